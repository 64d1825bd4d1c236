"""The package's shape: stages import only earlier stages and the core, never a later one, no
module imports itself back through others, and long functions say why they are long."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# The workflow's stages in DAG order; a module may import its own stage, earlier stages and the
# core. The application layer (CLI, config, results reader, simulator, benchmark) sits above
# every stage and may import any of them; no stage imports it.
LAYERS = ("core", "ingest", "validate", "measures", "models", "report", "multisite")
APPLICATION = "application"
MAX_FUNCTION_LINES = 80
# A function longer than the limit carries this comment on the line above its `def`.
LONG_REASON = "# Long:"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted((SRC / "accord").rglob("*.py"))}


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Every accord module each module imports, at the top or inside a function."""
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                if not base.startswith("accord"):
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    graph[name].add(full if full in modules else base)
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name.startswith("accord."))
    return graph


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return APPLICATION


def _rank(module: str) -> int:
    name = layer(module)
    return len(LAYERS) if name == APPLICATION else LAYERS.index(name)


MODULES = _modules()
GRAPH = _imports(MODULES)


def test_the_tree_has_one_package_per_stage():
    packages = {name.split(".")[1] for name in MODULES if name.count(".") >= 1}
    assert set(LAYERS) <= packages
    for stage in LAYERS:
        doc = ast.get_docstring(ast.parse((SRC / "accord" / stage / "__init__.py").read_text()))
        assert doc, f"accord/{stage}/__init__.py says what the stage reads and writes"


def test_no_stage_imports_a_later_stage_or_the_application():
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if target in MODULES and _rank(target) > _rank(module)
    )
    assert upward == []


def test_no_import_cycles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(GRAPH.get(node, ())):
            if target not in MODULES or target == node:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    assert cycles == []


def _long_functions(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        length = node.end_lineno - node.lineno + 1
        above = lines[first - 2].strip() if first >= 2 else ""
        if length > MAX_FUNCTION_LINES and not above.startswith(LONG_REASON):
            found.append(f"{_module_name(path)}.{node.name} ({length} lines)")
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_functions_are_short_or_say_why(module):
    assert _long_functions(MODULES[module]) == []


# ----------------------------------------------------------------- following docs/architecture.md

TOY_INSTRUMENT = {
    "toy3": {
        "name": "Toy three-item scale",
        "source": "hand-made for this test",
        "items": 3,
        "item_min": 0,
        "item_max": 4,
        "item_step": 1,
        "score": "sum",
        "higher_is": "worse",
        "reverse_items": [3],
    }
}


def test_a_new_instrument_from_the_config_is_scored():
    """The page's steps for an instrument: give the registry's fields under `instruments:`."""
    from accord.core.instruments import load_registry
    from accord.measures.scoring import score_measures

    registry = load_registry(TOY_INSTRUMENT)
    rows = [
        ("c1", 0, "toy3", "client", str(item), value, "intake")
        for item, value in ((1, 4.0), (2, 2.0), (3, 1.0))
    ]
    columns = ["client_id", "session_number", "instrument", "rater", "item", "value", "phase"]
    frame = pd.DataFrame(rows, columns=columns)
    scores, _ = score_measures(frame, registry)
    # item 3 reverse-keyed: 0 + 4 - 1 = 3, so 4 + 2 + 3 = 9
    assert scores.loc[scores["scale"] == "total", "score"].tolist() == [9.0]


TOY_KIND = '''
import numpy as np

from accord.models.tidy import ModelResult, coefficient_frame


def fit_toy_spec(panel, client_measures, spec, context):
    """Mean of the first score of the outcome, with its normal-theory 95% interval."""
    values = client_measures[f"{spec.outcome}_first"].dropna().to_numpy(dtype=float)
    mean, se = values.mean(), values.std(ddof=1) / np.sqrt(len(values))
    row = {"model": spec.id, "term": "first score mean", "estimate": mean, "std_error": se,
           "ci_low": mean - 1.959963984540054 * se, "ci_high": mean + 1.959963984540054 * se,
           "n_obs": len(values), "n_clients": len(values), "converged": True}
    return ModelResult(model=spec.id, outcome=spec.outcome, exposure=spec.exposure,
                       coefficients=coefficient_frame([row]),
                       diagnostics={"model": spec.id, "converged": True, "n_obs": len(values)})
'''


def test_a_new_model_kind_is_fitted_written_and_gathered(tmp_path, monkeypatch):
    """The page's steps for a model kind: a module with fit_<kind>_spec, an entry in KINDS,
    an entry in the config's models; fit_model, write_model_result and gather_models do the rest.
    """
    from conftest import simulated_measures

    from accord.models import spec as spec_module
    from accord.models.gather import gather_models
    from accord.models.tidy import write_model_result

    (tmp_path / "toy_kind.py").write_text(TOY_KIND, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(spec_module, "KINDS", {**spec_module.KINDS, "toy": "toy_kind:fit_toy_spec"})

    panel, client_measures, _ = simulated_measures(n_clients=60, n_therapists=4, seed=3)
    config = {"models": [{"id": "toy_first", "kind": "toy", "outcome": "phq9"}]}
    (toy,) = spec_module.model_specs(config)
    result = spec_module.fit_model(panel, client_measures, toy, spec_module.ModelContext())
    write_model_result(result, tmp_path / "coefficients.csv", tmp_path / "diagnostics.json")
    coefficients, diagnostics = gather_models(
        [tmp_path / "coefficients.csv"], [tmp_path / "diagnostics.json"]
    )

    first = client_measures["phq9_first"].dropna()
    row = coefficients.loc[coefficients["model"] == "toy_first"].iloc[0]
    assert row["estimate"] == pytest.approx(first.mean())
    assert row["n_clients"] == len(first)
    assert diagnostics["toy_first"]["role"] == "secondary"


def test_the_old_disclosure_module_still_imports_with_a_warning():
    import importlib
    import sys

    sys.modules.pop("accord.disclosure", None)
    with pytest.warns(DeprecationWarning, match="accord.core.disclosure"):
        old = importlib.import_module("accord.disclosure")
    from accord.core import disclosure

    assert old.suppress_count is disclosure.suppress_count
