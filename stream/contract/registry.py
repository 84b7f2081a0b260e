"""The schema registry: which events a project knows, their categories, and the JSON Schemas
(draft 2020-12) their ``custom_properties`` must satisfy.

Two layers. The *catalogue* ships with CEP (``catalogue/*.json``, one file per category) and
is the same for every project. On top, each project registers its own events, or overrides
a predefined event's schema, in numbered versions 1, 2, 3…; a new version must be backward
compatible with the one it replaces (see ``compat``) unless forced. Version 0 stands for
the catalogue's schema.

Reads are lock-free and the ingest hot path (``validate``, ``category``) touches only
dictionaries that writers replace wholesale, never mutate, so concurrent readers always
see a consistent snapshot. Writers serialise on one lock. Validators are compiled once per
(project, event, version), at registration; the catalogue's once per process.

Persistence is the caller's: ``export_state()`` / ``load_state()`` move plain JSON records,
and ``on_change`` sees each new record before it takes effect, so a store that fails to
persist it stops the change.
"""

from __future__ import annotations

import builtins
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Annotated, Any, Final

import jsonschema_rs
import msgspec
import orjson

from stream.contract.compat import ROOT, check_backward_compatible, join_path

CUSTOM_CATEGORY: Final = "Custom Events"
CATEGORIES: Final = (
    "User Actions",
    "Delivery and Fulfillment",
    "System Events",
    "User Engagement",
    "Analytics and Monitoring",
    CUSTOM_CATEGORY,
)
DRAFT_2020_12: Final = "https://json-schema.org/draft/2020-12/schema"

MAX_ERRORS: Final = 20  # per event; a huge bad array must not produce a huge reason
MAX_MESSAGE_CHARS: Final = 300
MAX_NAME_CHARS: Final = 255
MAX_SCHEMA_BYTES: Final = 256 * 1024
MAX_SCHEMA_DEPTH: Final = 32
_TYPES = "array, boolean, integer, null, number, object, string, or a list of them"
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")

OnChange = Callable[[dict[str, Any]], None]


class SchemaError(ValueError):
    """A registration or a state record was refused. ``str()`` is ``"<field>: <reason>"``.

    ``reasons`` lists every individual problem (e.g. each incompatible property).
    """

    def __init__(self, field: str, reason: str, reasons: Iterable[str] = ()) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.reasons = tuple(reasons) or (reason,)


# ---------------------------------------------------------------------------- catalogue


@dataclass(frozen=True, slots=True, eq=False)
class PredefinedEvent:
    """An event of the shipped catalogue. ``schema`` is shared: treat it as read-only."""

    name: str
    category: str
    description: str
    schema: Mapping[str, Any]
    session_start: bool = False
    session_end: bool = False
    conversion: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class Catalogue:
    """The predefined events, by name, with the flags sessionization reads."""

    events: Mapping[str, PredefinedEvent]
    category_descriptions: Mapping[str, str]
    session_start_events: frozenset[str]
    session_end_events: frozenset[str]
    conversion_events: frozenset[str]

    def get(self, name: str) -> PredefinedEvent | None:
        return self.events.get(name)

    def category_of(self, name: str) -> str:
        event = self.events.get(name)
        return event.category if event else CUSTOM_CATEGORY

    def in_category(self, category: str) -> tuple[PredefinedEvent, ...]:
        return tuple(e for e in self.events.values() if e.category == category)


class _CatalogueEntry(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    description: str
    schema: dict[str, Any]
    session_start: bool = False
    session_end: bool = False
    conversion: bool = False


class _CatalogueFile(msgspec.Struct, forbid_unknown_fields=True):
    category: str
    description: str
    events: list[_CatalogueEntry]


@cache
def load_catalogue() -> Catalogue:
    """Read ``catalogue/*.json`` (once per process). Raises ``ValueError`` on a broken file."""
    folder = resources.files("stream.contract").joinpath("catalogue")
    events: dict[str, PredefinedEvent] = {}
    descriptions: dict[str, str] = {}
    for resource in sorted(folder.iterdir(), key=lambda r: r.name):
        if not resource.name.endswith(".json"):
            continue
        doc = msgspec.json.decode(resource.read_bytes(), type=_CatalogueFile)
        if doc.category not in CATEGORIES or doc.category in descriptions:
            raise ValueError(f"{resource.name}: unknown or repeated category {doc.category!r}")
        descriptions[doc.category] = doc.description
        for entry in doc.events:
            if entry.name in events:
                raise ValueError(f"{resource.name}: event {entry.name!r} defined twice")
            events[entry.name] = PredefinedEvent(
                entry.name,
                doc.category,
                entry.description,
                entry.schema,
                entry.session_start,
                entry.session_end,
                entry.conversion,
            )
    missing = [c for c in CATEGORIES if c not in descriptions]
    if missing:
        raise ValueError(f"catalogue has no file for {missing}")
    order = {category: i for i, category in enumerate(CATEGORIES)}
    ordered = dict(sorted(events.items(), key=lambda kv: (order[kv[1].category], kv[0])))
    return Catalogue(
        events=ordered,
        category_descriptions={c: descriptions[c] for c in CATEGORIES},
        session_start_events=frozenset(n for n, e in events.items() if e.session_start),
        session_end_events=frozenset(n for n, e in events.items() if e.session_end),
        conversion_events=frozenset(n for n, e in events.items() if e.conversion),
    )


# ----------------------------------------------------------------------------- versions


@dataclass(frozen=True, slots=True, eq=False)
class SchemaVersion:
    """One schema of one event in one project. ``version`` 0 is the catalogue's schema.

    ``forced`` is true when the version was registered with ``force=True`` over an
    incompatible change. ``created_at`` is unix milliseconds (0 for the catalogue).
    ``schema`` is the registry's own copy: treat it as read-only.
    """

    project: str
    event_name: str
    version: int
    category: str
    schema: Mapping[str, Any]
    forced: bool = False
    created_at: int = 0

    @property
    def predefined(self) -> bool:
        """True for the catalogue's own schema (version 0)."""
        return self.version == 0

    def to_record(self) -> dict[str, Any]:
        """The JSON-serialisable state record (a deep copy)."""
        return {
            "type": "schema",
            "project": self.project,
            "event_name": self.event_name,
            "version": self.version,
            "category": self.category,
            "schema": orjson.loads(orjson.dumps(self.schema)),
            "forced": self.forced,
            "created_at": self.created_at,
        }


class _SchemaRecord(msgspec.Struct, tag="schema", tag_field="type", forbid_unknown_fields=True):
    project: str
    event_name: str
    version: Annotated[int, msgspec.Meta(ge=1)]
    category: str
    schema: dict[str, Any]
    forced: bool = False
    created_at: int = 0


class _StrictRecord(msgspec.Struct, tag="strict", tag_field="type", forbid_unknown_fields=True):
    project: str
    strict: bool


@dataclass(frozen=True, slots=True, eq=False)
class _Active:
    """The version that validates a (project, event), with its compiled validator."""

    version: SchemaVersion
    validator: jsonschema_rs.Validator


# ----------------------------------------------------------------------------- registry


class SchemaRegistry:
    """Per-project event schemas over the shared catalogue. Safe for concurrent readers.

    ``clock`` returns unix milliseconds (stamps ``created_at``). ``on_change`` is called
    with every new state record, under the write lock and before the change takes effect;
    if it raises, the change is not made.
    """

    def __init__(
        self,
        *,
        catalogue: Catalogue | None = None,
        clock: Callable[[], int] | None = None,
        on_change: OnChange | None = None,
    ) -> None:
        self.catalogue = catalogue if catalogue is not None else load_catalogue()
        self.on_change = on_change
        self._clock = clock if clock is not None else _now_ms
        self._lock = threading.RLock()
        self._predefined = _compile_catalogue(self.catalogue)
        # Copy-on-write: writers swap in new inner dicts / tuples / sets, never mutate them.
        self._active: dict[str, dict[str, _Active]] = {}
        self._history: dict[str, dict[str, tuple[SchemaVersion, ...]]] = {}
        self._strict_flags: dict[str, bool] = {}
        self._strict: frozenset[str] = frozenset()

    @classmethod
    def from_state(
        cls,
        records: Iterable[Mapping[str, Any]],
        *,
        catalogue: Catalogue | None = None,
        clock: Callable[[], int] | None = None,
        on_change: OnChange | None = None,
    ) -> SchemaRegistry:
        """A registry rebuilt from ``export_state()`` output (or the ``on_change`` log)."""
        registry = cls(catalogue=catalogue, clock=clock)
        registry.load_state(records)
        registry.on_change = on_change
        return registry

    # -- hot path ------------------------------------------------------------------------

    def validate(self, project: str, event_name: str, properties: Any) -> list[str]:
        """Every reason ``properties`` breaks the event's current schema; ``[]`` when valid.

        Reasons read ``custom_properties.<path>: <why>``. An unknown event name is valid
        unless the project is strict. At most ``MAX_ERRORS`` reasons are listed.
        """
        active = self._lookup(project, event_name)
        if active is None:
            if project in self._strict:
                return [
                    f"event_name: {_quote(event_name)} is not registered "
                    "and project is in strict mode"
                ]
            return []
        if active.validator.is_valid(properties):
            return []
        return _explain(active.validator, properties)

    def category(self, project: str, event_name: str) -> str:
        """The event's category; ``Custom Events`` for a name nobody registered."""
        active = self._lookup(project, event_name)
        return active.version.category if active else CUSTOM_CATEGORY

    def is_registered(self, project: str, event_name: str) -> bool:
        """True for catalogue events and events the project registered."""
        return self._lookup(project, event_name) is not None

    def is_strict(self, project: str) -> bool:
        return project in self._strict

    def _lookup(self, project: str, event_name: str) -> _Active | None:
        registered = self._active.get(project)
        if registered is not None:
            active = registered.get(event_name)
            if active is not None:
                return active
        return self._predefined.get(event_name)

    # -- reads ---------------------------------------------------------------------------

    def current(self, project: str, event_name: str) -> SchemaVersion | None:
        """The version that validates this event now; version 0 is the catalogue's."""
        active = self._lookup(project, event_name)
        if active is None:
            return None
        if active.version.version == 0:
            return replace(active.version, project=project)
        return active.version

    def versions(self, project: str, event_name: str) -> list[SchemaVersion]:
        """The project's registered versions of the event, oldest first (no version 0)."""
        return builtins.list(self._history.get(project, {}).get(event_name, ()))

    # -- writes --------------------------------------------------------------------------

    def register(
        self,
        project: str,
        event_name: str,
        schema: Mapping[str, Any],
        category: str | None = None,
        force: bool = False,
    ) -> SchemaVersion:
        """Add the next version of ``event_name``'s schema for ``project``.

        ``category`` defaults to the previous version's (the catalogue's for a predefined
        event, ``Custom Events`` for a new one); a predefined event keeps its category.
        Raises ``SchemaError`` for a bad name, category or schema, and — unless ``force`` —
        when the schema is not backward compatible with the current one (``reasons`` names
        each property). Registering the current schema again returns the current version.
        """
        _check_name("project", project)
        _check_name("event_name", event_name)
        if category is not None and category not in CATEGORIES:
            raise SchemaError(
                "category", f"{_quote(category)} is not one of {', '.join(CATEGORIES)}"
            )
        own_schema = _check_schema(schema)
        validator = _compile("schema", own_schema)
        with self._lock:
            previous = self.current(project, event_name)
            predefined = self.catalogue.get(event_name)
            if category is None:
                category = previous.category if previous else CUSTOM_CATEGORY
            if predefined is not None and category != predefined.category:
                raise SchemaError(
                    "category",
                    f"{_quote(event_name)} is predefined in {_quote(predefined.category)}",
                )
            reasons: list[str] = []
            if previous is not None:
                if (
                    previous.version > 0
                    and previous.category == category
                    and _same_json(previous.schema, own_schema)
                ):
                    return previous
                reasons = check_backward_compatible(
                    _object_root(previous.schema), _object_root(own_schema)
                )
            number = len(self._history.get(project, {}).get(event_name, ())) + 1
            if reasons and not force:
                raise SchemaError(
                    "schema",
                    f"version {number} of {_quote(event_name)} is not backward compatible "
                    f"with version {previous.version if previous else 0}: " + "; ".join(reasons),
                    reasons,
                )
            version = SchemaVersion(
                project,
                event_name,
                number,
                category,
                own_schema,
                forced=bool(reasons),
                created_at=self._clock(),
            )
            self._notify(version.to_record())
            self._install(version, validator)
        return version

    def set_strict(self, project: str, strict: bool = True) -> None:
        """Strict mode: reject event names that are neither predefined nor registered."""
        _check_name("project", project)
        with self._lock:
            if self._strict_flags.get(project) is strict:
                return
            self._notify({"type": "strict", "project": project, "strict": strict})
            self._set_strict(project, strict)

    # -- persistence ---------------------------------------------------------------------

    def export_state(self) -> builtins.list[dict[str, Any]]:
        """Every registered version and every strict-mode flag, as JSON-serialisable dicts."""
        with self._lock:
            records = [
                version.to_record()
                for project in sorted(self._history)
                for event_name in sorted(self._history[project])
                for version in self._history[project][event_name]
            ]
            records.extend(
                {"type": "strict", "project": project, "strict": strict}
                for project, strict in sorted(self._strict_flags.items())
            )
        return records

    def load_state(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Apply records from ``export_state()`` or ``on_change``, in order.

        History is trusted, so compatibility is not re-checked, but each schema must still
        compile and versions must follow on (a record already held is skipped, so a log
        can be replayed twice). Nothing is applied unless every record is good. Does not
        call ``on_change``. Raises ``SchemaError`` naming ``state[i].<field>``.
        """
        try:
            parsed = msgspec.convert(
                builtins.list(records), builtins.list[_SchemaRecord | _StrictRecord]
            )
        except msgspec.ValidationError as error:
            # msgspec says "<reason> - at `$[3].version`"; name the field the same way as
            # every other SchemaError does.
            reason, _, where = str(error).rpartition(" - at `$")
            if not reason:
                raise SchemaError("state", str(error)) from None
            raise SchemaError("state" + where.rstrip("`"), reason) from None
        with self._lock:
            staged: builtins.list[_Active | _StrictRecord] = []
            latest: dict[tuple[str, str], int] = {}
            for index, record in enumerate(parsed):
                where = f"state[{index}]"
                if isinstance(record, _StrictRecord):
                    staged.append(record)
                    continue
                key = (record.project, record.event_name)
                held = latest.get(key, len(self._history.get(key[0], {}).get(key[1], ())))
                if record.version <= held:
                    continue
                if record.version != held + 1:
                    raise SchemaError(
                        f"{where}.version", f"expected version {held + 1}, got {record.version}"
                    )
                if record.category not in CATEGORIES:
                    raise SchemaError(f"{where}.category", f"{_quote(record.category)} is unknown")
                own_schema = _check_schema(record.schema, where)
                validator = _compile(f"{where}.schema", own_schema)
                latest[key] = record.version
                version = SchemaVersion(
                    record.project,
                    record.event_name,
                    record.version,
                    record.category,
                    own_schema,
                    record.forced,
                    record.created_at,
                )
                staged.append(_Active(version, validator))
            for item in staged:
                if isinstance(item, _StrictRecord):
                    self._set_strict(item.project, item.strict)
                else:
                    self._install(item.version, item.validator)

    # -- internals -----------------------------------------------------------------------

    def _notify(self, record: dict[str, Any]) -> None:
        if self.on_change is not None:
            self.on_change(record)

    def _install(self, version: SchemaVersion, validator: jsonschema_rs.Validator) -> None:
        project, name = version.project, version.event_name
        history = dict(self._history.get(project, {}))
        history[name] = (*history.get(name, ()), version)
        active = dict(self._active.get(project, {}))
        active[name] = _Active(version, validator)
        self._history[project] = history
        self._active[project] = active

    def _set_strict(self, project: str, strict: bool) -> None:
        self._strict_flags[project] = strict
        self._strict = (self._strict | {project}) if strict else (self._strict - {project})

    # ``list`` last and spelled ``builtins.list`` elsewhere: the method shadows the builtin
    # inside the class body.
    def list(self, project: str) -> builtins.list[SchemaVersion]:
        """The current version of every event the project knows, by category then name."""
        order = {category: i for i, category in enumerate(CATEGORIES)}
        names = {*self._predefined, *self._active.get(project, {})}
        current = [v for v in (self.current(project, n) for n in names) if v is not None]
        return sorted(current, key=lambda v: (order.get(v.category, len(order)), v.event_name))


# ------------------------------------------------------------------------------ helpers


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _quote(text: str) -> str:
    return orjson.dumps(text).decode()


def _clip(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - 1] + "…"


def _check_name(field: str, name: object) -> None:
    if not isinstance(name, str) or not name.strip():
        raise SchemaError(field, "must be a non-empty string")
    if len(name) > MAX_NAME_CHARS:
        raise SchemaError(field, f"is longer than {MAX_NAME_CHARS} characters")
    if name != name.strip() or _CONTROL_CHARS.search(name):
        raise SchemaError(field, "has leading/trailing spaces or control characters")


def _check_schema(schema: object, where: str = "") -> dict[str, Any]:
    """The registry's own deep copy of ``schema``, once it is a usable properties schema."""
    field = f"{where}.schema" if where else "schema"
    if not isinstance(schema, Mapping):
        raise SchemaError(field, "must be a JSON object")
    try:
        encoded = orjson.dumps(schema)
    except TypeError as error:
        raise SchemaError(field, f"is not JSON-serialisable ({error})") from None
    if len(encoded) > MAX_SCHEMA_BYTES:
        raise SchemaError(field, f"is larger than {MAX_SCHEMA_BYTES} bytes of JSON")
    own: dict[str, Any] = orjson.loads(encoded)
    declared = own.get("$schema", DRAFT_2020_12)
    if declared not in (DRAFT_2020_12, DRAFT_2020_12 + "#"):
        # Checked before meta-validation, which would try to fetch an unknown meta-schema.
        raise SchemaError(f"{field}.$schema", f"must be {DRAFT_2020_12} (draft 2020-12)")
    root_type = own.get("type", "object")
    if root_type != "object" and not (isinstance(root_type, list) and "object" in root_type):
        raise SchemaError(f"{field}.type", 'must be "object": custom_properties is an object')
    if _depth(own) > MAX_SCHEMA_DEPTH:
        raise SchemaError(field, f"nests deeper than {MAX_SCHEMA_DEPTH} levels")
    try:
        jsonschema_rs.meta.validate(own)
    except jsonschema_rs.ValidationError as error:
        reason = error.message
        if error.schema_path[-3:] == ["properties", "type", "anyOf"]:
            # The meta-schema's own wording ("not valid under any of the schemas listed in
            # the 'anyOf' keyword") does not tell a user what a type may be.
            shown = orjson.dumps(error.instance, default=str).decode()
            reason = f"{shown} is not a JSON Schema type ({_TYPES})"
        raise SchemaError(_schema_path(field, error), _clip(reason)) from None
    except jsonschema_rs.ReferencingError as error:
        raise SchemaError(field, _clip(error.message)) from None
    return own


def _compile(field: str, schema: Mapping[str, Any]) -> jsonschema_rs.Validator:
    """A 2020-12 validator that never fetches remote ``$ref``s and whose ``pattern``s run in
    linear time (the ``regex`` engine: no look-around or back-references, no ReDoS)."""
    try:
        return jsonschema_rs.Draft202012Validator(
            dict(schema), offline=True, pattern_options=jsonschema_rs.RegexOptions()
        )
    except jsonschema_rs.ValidationError as error:
        raise SchemaError(_schema_path(field, error), _clip(error.message)) from None
    except (jsonschema_rs.ReferencingError, ValueError) as error:
        raise SchemaError(field, _clip(str(error))) from None


def _compile_catalogue(catalogue: Catalogue) -> dict[str, _Active]:
    return {
        name: _Active(
            SchemaVersion("", name, 0, event.category, event.schema),
            _compile(f"catalogue[{_quote(name)}]", event.schema),
        )
        for name, event in catalogue.events.items()
    }


def _schema_path(field: str, error: jsonschema_rs.ValidationError) -> str:
    path = field
    for segment in error.instance_path:
        path = join_path(path, segment)
    return path


def _explain(validator: jsonschema_rs.Validator, properties: Any) -> builtins.list[str]:
    reasons: builtins.list[str] = []
    for error in validator.iter_errors(properties):
        if len(reasons) >= MAX_ERRORS:
            reasons.append(f"{ROOT}: more errors not shown")
            break
        path = ROOT
        for segment in error.instance_path:
            path = join_path(path, segment)
        kind = error.kind
        if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
            reasons.append(f"{join_path(path, kind.property)}: is a required property")
        elif isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
            reasons.extend(
                f"{join_path(path, name)}: is not an allowed property" for name in kind.unexpected
            )
        else:
            reasons.append(f"{path}: {_clip(error.message)}")
    return reasons


def _depth(value: object) -> int:
    """How many levels of objects and arrays ``value`` nests (breadth-first, no recursion)."""
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [
            child
            for node in level
            for child in _children(node)
            if isinstance(child, dict | builtins.list)
        ]
    return depth


def _children(node: object) -> Iterable[object]:
    if isinstance(node, dict):
        return node.values()
    if isinstance(node, builtins.list):
        return node
    return ()


def _same_json(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    sort = orjson.OPT_SORT_KEYS
    return orjson.dumps(a, option=sort) == orjson.dumps(b, option=sort)


def _object_root(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    # custom_properties is always an object, so a root without "type" means "object";
    # saying so keeps compat from reading an added root type as a narrowing.
    return schema if "type" in schema else {**schema, "type": "object"}
