"""The strategies Liftboard knows, read from the strategy catalog file ``core/strategies.toml``.

The catalog file is the one declaration of every strategy. This module reads its identity part — each
strategy's id, the entity kind it applies to and the other names real data may use for it (aliases) —
which is what the canonical schema (``core.schema``) and ingest need; ``strategies.catalog`` reads the
rest of the same entries (name, team, cost, eligibility). Living in core, the registry is importable by
every layer, the data layer included, which may not import ``strategies``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

EntityKind = Literal["creator", "merchant"]
ENTITY_KINDS: tuple[EntityKind, ...] = ("creator", "merchant")

CATALOG_PATH = Path(__file__).with_name("strategies.toml")
CATALOG_NAME = "core/strategies.toml"
"""How messages name the catalog file (its place in the project, not on this machine)."""

UNKNOWN_STRATEGY_HELP = (
    f"add it to the strategy catalog ({CATALOG_NAME}) as a [[strategy]] entry with its id and target, "
    'or map it to a known strategy by adding "{value}" to that strategy\'s aliases'
)
"""What to do about a strategy the catalog does not know (``{value}``: the name the data used)."""

ID_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")
"""A strategy id: lower-case letters, digits and underscores, at most 64 characters (the state DB's
column width)."""


@dataclass(frozen=True)
class KnownStrategy:
    """A strategy's identity: its canonical id, the entity kind it applies to, the aliases data may use."""

    id: str
    kind: EntityKind
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class StrategyRegistry:
    """Every strategy of a catalog file, in the file's order."""

    strategies: tuple[KnownStrategy, ...]

    def ids(self, kind: EntityKind | None = None) -> tuple[str, ...]:
        """The canonical ids, of one entity kind or of all."""
        return tuple(s.id for s in self.strategies if kind is None or s.kind == kind)

    @property
    def kinds(self) -> Mapping[str, EntityKind]:
        """Canonical id → the entity kind the strategy applies to."""
        return MappingProxyType({s.id: s.kind for s in self.strategies})

    @property
    def aliases(self) -> Mapping[str, str]:
        """Alias → canonical id."""
        return MappingProxyType({alias: s.id for s in self.strategies for alias in s.aliases})

    def canonical(self, name: str) -> str | None:
        """The canonical id a name stands for (itself or one of its aliases), or None if unknown."""
        return name if name in self.kinds else self.aliases.get(name)


def _aliases(entry: Mapping[str, Any], where: str) -> tuple[str, ...]:
    raw = entry.get("aliases", [])
    if not isinstance(raw, list) or not all(isinstance(a, str) and a.strip() == a and a for a in raw):
        raise ValueError(f"{where}: aliases must be a list of non-empty names without surrounding blanks")
    return tuple(raw)


def _known_strategy(entry: Mapping[str, Any], where: str) -> KnownStrategy:
    strategy_id = entry.get("id")
    if not isinstance(strategy_id, str) or not ID_PATTERN.fullmatch(strategy_id):
        raise ValueError(
            f"{where}: id {strategy_id!r} must be lower-case letters, digits and underscores "
            "(at most 64 characters, starting with a letter); list other spellings in aliases"
        )
    kind = entry.get("target")
    if kind not in ENTITY_KINDS:
        raise ValueError(
            f"{where}: strategy {strategy_id!r} has unknown target {kind!r}; use {' or '.join(ENTITY_KINDS)}"
        )
    return KnownStrategy(
        strategy_id, cast(EntityKind, kind), _aliases(entry, f"{where}: strategy {strategy_id!r}")
    )


def _check_unique(strategies: list[KnownStrategy], where: str) -> None:
    """Every id and alias names one strategy: no id twice, no alias that is an id or claimed twice."""
    owner: dict[str, str] = {}
    for strategy in strategies:
        if strategy.id in owner:
            raise ValueError(f"{where}: strategy {strategy.id!r} is declared twice")
        owner[strategy.id] = strategy.id
    for strategy in strategies:
        for alias in strategy.aliases:
            if alias in owner:
                other = owner[alias]
                what = "is a strategy id" if other == alias else f"is already an alias of {other!r}"
                raise ValueError(f"{where}: alias {alias!r} of strategy {strategy.id!r} {what}")
            owner[alias] = strategy.id


def registry_from(raw: Mapping[str, Any], where: str) -> StrategyRegistry:
    """The registry of a parsed catalog file (``where`` names the file in error messages)."""
    entries = raw.get("strategy")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{where}: no [[strategy]] entries")
    strategies = [_known_strategy(entry, where) for entry in entries]
    _check_unique(strategies, where)
    return StrategyRegistry(tuple(strategies))


def read_catalog_file(path: Path = CATALOG_PATH) -> dict[str, Any]:
    """A catalog file, parsed (the whole file: ``strategies.catalog`` reads the parts beyond identity)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None


def load_registry(path: Path = CATALOG_PATH) -> StrategyRegistry:
    """The strategies a catalog file declares."""
    return registry_from(read_catalog_file(path), str(path))


STRATEGY_REGISTRY = load_registry()
"""The strategies of the shipped catalog: the ones ingest accepts and the models learn."""
