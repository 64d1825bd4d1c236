"""Every count the report publishes together, audited together (privacy.md, section 2).

Each table suppresses its own small cells (`accord.core.disclosure`), but a reader holds the whole
report: the clients validated minus the clients a model analysed, an arm's size minus the
clients with a measure, a percentage beside its numerator. Sections publish such counts through
a `Ledger`, naming each count by what it counts (``clients[usual_care]``,
``model[lagged].clients``) and declaring how counts relate: a total and its parts, a group and
the clients with a value (the rest, clients without one, is a count of people the report
withholds when it is from 1 to ``min_cell - 1``, as Table 1 does), a percentage and its
numerator and denominator.

The audit asks, for every withheld small count, the least and greatest value a reader can
deduce from everything published (`accord.core.disclosure.deducible_interval`, a linear programme
as tau-argus runs). A count narrowed below `accord.core.disclosure.protection_width` is exposed; the
report then withholds one more published count (the one whose withholding protects it, a
detail such as a model's or a measure's n before a group's size) and is built again. A count
withheld this way reads as the range of values a reader can deduce from the rest of the report
anyway (``"140–149"``), which adds nothing, or ``"*"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from accord.core.disclosure import (
    COMPLEMENTARY_LABEL,
    DEFAULT_MIN_CELL,
    NOT_AVAILABLE,
    deducible_interval,
    is_protected,
    is_small,
    suppress_count,
    suppressed_label,
)

Range = tuple[float, float]
RANGE_DASH = "\u2013"
#: Roles: a group's size is withheld only when no detail count can protect a small count.
SIZE, DETAIL = "size", "detail"
#: Candidates tried per exposed count (the directly related ones first).
MAX_CANDIDATES = 12


@dataclass(frozen=True)
class Exposure:
    """A withheld count that a reader can narrow down further than the rule allows."""

    key: str
    value: int
    low: float
    high: float

    def describe(self) -> str:
        return f"{self.key} ({self.value}) can be placed in {self.low:g}..{self.high:g}"


@dataclass
class Ledger:
    """The counts one build of the report publishes, and the counts the audit withholds.

    `withheld` (key -> reason) and `ranges` carry over from one build to the next
    (`next_build`); everything else is collected anew by the sections.
    """

    min_cell: int = DEFAULT_MIN_CELL
    withheld: dict[str, str] = field(default_factory=dict)
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    values: dict[str, int] = field(default_factory=dict)
    known: dict[str, Range] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    protected: set[str] = field(default_factory=set)
    relations: list[dict[str, float]] = field(default_factory=list)
    ratios: list[tuple[str, str, float, float]] = field(default_factory=list)
    pending: list[tuple[str, str, str, str]] = field(default_factory=list)
    _components: dict[str, set[str]] | None = field(default=None, repr=False)

    def next_build(self) -> Ledger:
        """An empty ledger for the next build, with this one's decisions."""
        return Ledger(self.min_cell, dict(self.withheld), dict(self.ranges))

    # -- publishing -------------------------------------------------------------------------

    def count(self, key: str, value: int, text: str | None = None, *, role: str = DETAIL) -> str:
        """Publish the count `value` as `key`; returns the text to print.

        `text` is how the section would show it after its own suppression (default: the count,
        or "<11" for a small one). A count the audit withholds reads as the range a reader can
        deduce anyway, or "*" until that range is known.
        """
        value = int(value)
        if text is None:
            text = suppressed_label(self.min_cell) if is_small(value, self.min_cell) else str(value)
        if key in self.withheld and text.isdigit():
            low_high = self.ranges.get(key)
            if low_high is None or low_high[0] < self.min_cell:  # "*" says as much
                text = COMPLEMENTARY_LABEL
            elif low_high[0] == low_high[1]:  # the rest of the report gives it away anyway
                text = str(low_high[0])
            else:
                text = f"{low_high[0]}{RANGE_DASH}{low_high[1]}"
        self._learn(key, value, self._reading(text))
        self.roles[key] = SIZE if role == SIZE or self.roles.get(key) == SIZE else DETAIL
        if text == suppressed_label(self.min_cell):
            self.protected.add(key)
        return text

    def unpublished(self, key: str, value: int) -> None:
        """A count the report implies but never prints (clients without a value): withheld,
        and so protected, when it is small; otherwise unknown to a reader."""
        value = int(value)
        if is_small(value, self.min_cell):
            self._learn(key, value, (1.0, float(self.min_cell - 1)))
            self.protected.add(key)
        else:
            self._learn(key, value, (0.0, math.inf))

    def relate(self, total: str, parts: Sequence[str]) -> None:
        """`total` is the sum of `parts` (a reader knows this from the tables' meaning)."""
        relation: dict[str, float] = {total: -1.0}
        for part in parts:
            relation[part] = relation.get(part, 0.0) + 1.0
        self.relations.append(relation)
        self._components = None

    def same(self, a: str, b: str) -> None:
        """`a` and `b` count the same clients (one table's denominator, another's count);
        taken into account when both are published with the same value."""
        self.pending.append(("same", a, b, ""))

    def subset(self, key: str, value: int, of: str, rest: str, text: str | None = None) -> str:
        """Publish `key`, the clients of group `of` with a value; `rest` (those without) is
        implied by subtraction once `of` is published. Returns the text to print."""
        shown = self.count(key, value, text)
        self.pending.append(("subset", key, of, rest))
        return shown

    def implied(self, key: str, value: int, of: str, rest: str) -> None:
        """`key`, the clients of group `of` with a value, is never printed but is the sum of
        printed counts (a Table 1 characteristic's levels); `rest`, those without a value, is
        implied by subtraction once `of` is published."""
        self.unpublished(key, value)
        self.pending.append(("subset", key, of, rest))

    def percentage(self, numerator: str, denominator: str, text: str) -> None:
        """A percentage printed as `text` ("34.8%") of `numerator` over `denominator`: with
        its rounding it bounds their ratio."""
        match = re.search(r"(\d+(?:\.(\d+))?)\s*%", text)
        if not match:
            return
        share = float(match.group(1)) / 100
        half = 0.5 * 10 ** -(len(match.group(2) or "") + 2)
        self.ratios.append((numerator, denominator, max(share - half, 0.0), share + half))
        self._components = None

    def model_clients(self, model: str, n: int | None) -> str:
        """The clients a model analysed, published as ``model[<id>].clients``."""
        if n is None:
            return NOT_AVAILABLE
        return self.count(f"model[{model}].clients", n)

    def model_observations(self, model: str, n_obs: int | None, n_clients: int | None) -> str:
        """A model's observations; in a model of one row per client they are its clients, and
        in one with no more rows than clients (a row per client and outcome, say) they count
        clients too: audited as part of the clients validated."""
        if n_obs is None:
            return NOT_AVAILABLE
        if n_clients is not None and int(n_obs) == int(n_clients):
            return self.model_clients(model, n_obs)
        if n_clients is not None and int(n_obs) < int(n_clients):
            key = f"model[{model}].observations"
            return self.subset(key, n_obs, of="clients", rest=f"{key}.left")
        return suppress_count(n_obs, self.min_cell)

    def is_withheld(self, key: str) -> bool:
        return key in self.withheld

    # -- the audit --------------------------------------------------------------------------

    def settle(self) -> None:
        """Add the relations that needed counts published later (subsets, same counts)."""
        for kind, a, b, rest in self.pending:
            if b not in self.values or a not in self.values:
                continue
            if kind == "same" and self.values[a] == self.values[b]:
                self.relations.append({a: 1.0, b: -1.0})
            elif kind == "subset":
                self.unpublished(rest, self.values[b] - self.values[a])
                self.relate(b, [a, rest])
        self.pending = []
        self._components = None

    def exposures(self) -> list[Exposure]:
        """Every withheld small count a reader can narrow down too far, in key order."""
        self.settle()
        found = []
        for key in sorted(self.protected):
            low, high = self.interval(key)
            if not is_protected(low, high, self.min_cell):
                found.append(Exposure(key, self.values[key], low, high))
        return found

    def interval(
        self, key: str, hiding: Iterable[str] = (), binding: set[str] | None = None
    ) -> Range:
        """What a reader can deduce about `key`, with the counts in `hiding` withheld too.

        Only the counts linked to `key` by a chain of relations and ratios can tell anything
        about it, so the linear programme is set up over those alone.
        """
        component = self._component(key)
        if len(component) == 1:
            return self.known[key]
        knowledge = {k: self.known[k] for k in component}
        for other in hiding:
            if other in knowledge and knowledge[other][0] == knowledge[other][1]:
                knowledge[other] = (0.0, math.inf)
        relations = [r for r in self.relations if not component.isdisjoint(r)]
        ratios = [r for r in self.ratios if r[0] in component]
        return deducible_interval(key, knowledge, relations, ratios, binding=binding)

    def _component(self, key: str) -> set[str]:
        """The counts linked to `key` through relations and ratios (`key` included)."""
        if self._components is None:
            parent: dict[str, str] = {k: k for k in self.known}

            def find(k: str) -> str:
                while parent[k] != k:
                    parent[k] = parent[parent[k]]
                    k = parent[k]
                return k

            links = [list(r) for r in self.relations] + [list(r[:2]) for r in self.ratios]
            for link in links:
                members = [k for k in link if k in parent]
                for other in members[1:]:
                    parent[find(other)] = find(members[0])
            groups: dict[str, set[str]] = {}
            for k in parent:
                groups.setdefault(find(k), set()).add(k)
            self._components = {k: groups[find(k)] for k in parent}
        return self._components.get(key, {key})

    def protect(self) -> bool:
        """Withhold published counts until no small count is exposed; True if anything new
        was withheld or a withheld count's range changed (the report must be built again)."""
        changed = False
        for exposure in self.exposures():
            if changed and is_protected(*self.interval(exposure.key), self.min_cell):
                continue  # protected by a count withheld for another
            chosen = self._complement(exposure.key)
            if chosen is None:
                continue
            self.withheld[chosen] = (
                f"withheld so that a count from 1 to {self.min_cell - 1} elsewhere in the "
                "report cannot be worked out from it"
            )
            self.known[chosen] = (0.0, math.inf)
            changed = True
        if changed:
            return True
        ranges = {}
        for key in sorted(self.withheld):
            if key in self.values:
                low, high = self.interval(key, hiding=self.withheld)
                if not math.isinf(high):
                    ranges[key] = (math.ceil(low - 1e-6), math.floor(high + 1e-6))
        if ranges != self.ranges:
            self.ranges = ranges
            return True
        return False

    def _complement(self, key: str) -> str | None:
        """The published count to withhold so that `key` is protected: of the detail counts
        whose published values limit what a reader can deduce about it (binding in the linear
        programmes), the smallest one that protects it alone, else the smallest (the audit
        then runs again). Group sizes are printed in many places and are never chosen."""
        binding: set[str] = set()
        self.interval(key, hiding=self.withheld, binding=binding)
        candidates = sorted(
            (
                k
                for k in binding
                if self.known[k][0] == self.known[k][1]
                and k not in self.withheld
                and self.roles.get(k) != SIZE
            ),
            key=lambda k: (self.values[k], k),
        )
        for candidate in candidates[:MAX_CANDIDATES]:
            low, high = self.interval(key, hiding=[*self.withheld, candidate])
            if is_protected(low, high, self.min_cell):
                return candidate
        return candidates[0] if candidates else None

    def _connected(self, a: str, b: str) -> bool:
        """Whether `a` and `b` appear together in a chain of relations or ratios."""
        return a in self._component(b)

    # -- internals --------------------------------------------------------------------------

    def _reading(self, text: str) -> Range | None:
        """What a reader learns from a printed count."""
        text = text.strip()
        if text.isdigit():
            return (float(text), float(text))
        if text == suppressed_label(self.min_cell):
            return (1.0, float(self.min_cell - 1))
        if text == COMPLEMENTARY_LABEL:
            return (0.0, math.inf)
        match = re.fullmatch(rf"(\d+)\s*{RANGE_DASH}\s*(\d+)", text)
        if match:
            return (float(match.group(1)), float(match.group(2)))
        return None

    def _learn(self, key: str, value: int, reading: Range | None) -> None:
        if key in self.values and self.values[key] != value:
            raise ValueError(
                f"disclosure ledger: {key} published as {self.values[key]} and {value}"
            )
        if key not in self.values:
            self._components = None
        self.values[key] = value
        if reading is None:
            reading = (0.0, math.inf)
        low, high = self.known.get(key, (0.0, math.inf))
        self.known[key] = (max(low, reading[0]), min(high, reading[1]))
