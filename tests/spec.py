"""Strict validation of request bodies against the official OpenSearch API spec (../shared/opensearch-api-spec).

The spec's object schemas accept unknown keys, so a misspelled key would pass. `strict` mode closes every
object schema that defines `properties` at the place where an instance is checked against it, with
`additionalProperties: false`. Where `allOf`/`$ref` compose the object, the parts are left open (closing
`QueryBase` in `allOf: [QueryBase, {field...}]` would reject `field`) and the composing schema lists every key
its parts declare, then closes. That is `unevaluatedProperties: false` without the cost of collecting
annotations (one to two seconds per mapping body). Branches of a oneOf/anyOf are closed one by one, so they
also tell `_msearch` headers from bodies.

`KNOWN_GAPS` patches what the spec misses but OpenSearch accepts (checked against upstream source). Each
patch first checks that the spec still has the gap, so an updated spec makes the patch fail loudly.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_DIR = Path(
    os.environ.get("NEURANK_OPENSEARCH_SPEC", Path(__file__).resolve().parents[2] / "shared" / "opensearch-api-spec")
) / "spec"

Mode = Literal["strict", "unpatched", "raw"]
"""strict: gaps patched, objects closed (the default). unpatched: objects closed, gaps not patched (to prove
each patch is needed). raw: the spec as published (keywords reordered for speed only)."""

Target = tuple[str, str]
"""(document URI, JSON pointer) of a schema."""

Docs = dict[str, Any]
"""document URI → the parsed YAML document."""

_REQUESTS: dict[str, tuple[str, str]] = {
    "indices.create": ("namespaces/indices.yaml",
                       "/components/requestBodies/indices.create/content/application~1json/schema"),
    "search": ("namespaces/_core.yaml", "/components/requestBodies/search/content/application~1json/schema"),
    "search_pipeline.put": ("namespaces/search_pipeline.yaml",
                            "/components/requestBodies/search_pipeline.put/content/application~1json/schema"),
    "msearch.header": ("schemas/_core.msearch.yaml", "/components/schemas/MultisearchHeader"),
    "msearch.body": ("schemas/_core.msearch.yaml", "/components/schemas/MultisearchBody"),
    "bulk.action": ("schemas/_core.bulk.yaml", "/components/schemas/OperationContainer"),
    "bulk.update": ("schemas/_core.bulk.yaml", "/components/schemas/UpdateAction"),
}
"""What can be validated: a request body, or one line of an NDJSON body (`msearch.*`, `bulk.*`)."""

REQUESTS = tuple(_REQUESTS)


class SpecViolation(AssertionError):
    """A body the spec (in the chosen mode) does not accept."""


# --- loading --------------------------------------------------------------------------------------------


class _Yaml12Loader(yaml.CSafeLoader):
    """YAML 1.2 scalars, as the spec's own tooling reads them: `no`/`yes`/`on` are strings, not booleans."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _uri(relative: str) -> str:
    return (SPEC_DIR / relative).as_uri()


def _load_docs() -> Docs:
    if not SPEC_DIR.is_dir():
        raise FileNotFoundError(f"OpenSearch API spec not found at {SPEC_DIR}; set NEURANK_OPENSEARCH_SPEC")
    paths = sorted(SPEC_DIR.glob("schemas/*.yaml")) + sorted(SPEC_DIR.glob("namespaces/*.yaml"))
    return {path.as_uri(): yaml.load(path.read_text(encoding="utf-8"), Loader=_Yaml12Loader) for path in paths}


def _pointer_get(document: Any, pointer: str) -> Any:
    node = document
    for part in pointer.lstrip("/").split("/") if pointer.strip("/") else []:
        key = part.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def _resolve(docs: Docs, base: str, ref: str) -> tuple[Target, Any]:
    absolute = urljoin(base, ref)
    uri, _, pointer = absolute.partition("#")
    return (uri, pointer), _pointer_get(docs[uri], pointer)


def _schema(docs: Docs, relative: str, name: str) -> dict[str, Any]:
    return _pointer_get(docs[_uri(relative)], f"/components/schemas/{name}")


# --- known gaps -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gap:
    reason: str
    patch: Callable[[Docs], None]


def _z_score(docs: Docs) -> None:
    enum = _schema(docs, "schemas/search_pipeline._common.yaml", "ScoreNormalizationTechnique")["enum"]
    assert "z_score" not in enum, "spec now has z_score: drop this gap"
    enum.append("z_score")


def _bound(score_key: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "mode": {"type": "string", "enum": ["apply", "clip", "ignore"]},
            score_key: {"type": "number", "minimum": -10_000, "maximum": 10_000},
        },
    }


def _min_max_bounds(docs: Docs) -> None:
    properties = _schema(docs, "schemas/search_pipeline._common.yaml", "ScoreNormalization")["properties"]
    assert "parameters" not in properties, "spec now has normalization parameters: drop this gap"
    properties["parameters"] = {
        "type": "object",
        "properties": {
            "lower_bounds": {"type": "array", "maxItems": 5, "items": _bound("min_score")},
            "upper_bounds": {"type": "array", "maxItems": 5, "items": _bound("max_score")},
        },
    }


def _rrf_weights(docs: Docs) -> None:
    properties = _schema(docs, "schemas/search_pipeline._common.yaml", "ScoreRankerCombination")["properties"]
    assert "parameters" not in properties, "spec now has score-ranker parameters: drop this gap"
    properties["parameters"] = {"$ref": "#/components/schemas/ScoreCombinationParameters"}


def _similarity_by_name(docs: Docs) -> None:
    similarity = _schema(docs, "schemas/indices._common.yaml", "IndexSettingsSimilarity")
    algorithms = similarity.pop("properties")
    assert "bm25" in algorithms, "IndexSettingsSimilarity changed shape: review this gap"
    similarity["additionalProperties"] = {"oneOf": list(algorithms.values())}
    bm25 = _schema(docs, "schemas/indices._common.yaml", "IndexSettingsSimilarityBm25")
    bm25["required"] = ["type"]


KNOWN_GAPS: dict[str, Gap] = {
    "z_score normalization": Gap(
        "neural-search 3.0 (#1224) added normalization technique z_score; the spec's enum has only min_max, l2",
        _z_score,
    ),
    "min_max bounds": Gap(
        "normalization.parameters lower_bounds (3.0, #1195) / upper_bounds (3.2, #1431): "
        "≤5 items of {mode: apply|clip|ignore, min_score|max_score in [-10000, 10000]}; not in the spec",
        _min_max_bounds,
    ),
    "rrf weights": Gap(
        "score-ranker-processor reads combination.parameters.weights (neural-search 3.1, #1322); "
        "the spec's ScoreRankerCombination has no parameters",
        _rrf_weights,
    ),
    "similarity by name": Gap(
        "OpenSearch reads index.similarity.<any name>.type (SimilarityService, e.g. `default`); the spec keys it by "
        "algorithm (bm25, dfr, ...) and requires BM25 discount_overlaps, which defaults to true",
        _similarity_by_name,
    ),
}


# --- closing object schemas -----------------------------------------------------------------------------

_OPEN_KEYS = ("additionalProperties", "unevaluatedProperties", "patternProperties")
_SUBSCHEMA_KEYS = ("additionalProperties", "unevaluatedProperties", "items", "contains", "unevaluatedItems")
_SUBSCHEMA_MAP_KEYS = ("properties", "patternProperties", "dependentSchemas")


def _alternatives_in_place(node: Mapping[str, Any], in_place: bool) -> bool:
    """oneOf/anyOf branches describe a whole object unless something beside them adds keys to it."""
    return in_place or any(key in node for key in ("properties", "allOf", "$ref"))


def _ref_in_place(node: Mapping[str, Any], in_place: bool) -> bool:
    return in_place or any(key in node for key in ("properties", "allOf", "oneOf", "anyOf"))


@dataclass(slots=True)
class _Walk:
    """One pass over every schema reachable from the roots, knowing which positions are evaluated in place."""

    docs: Docs
    in_place_targets: set[Target]
    close: bool
    found: set[Target] = field(default_factory=set)
    seen: set[tuple[Target, bool]] = field(default_factory=set)

    def run(self, roots: Sequence[Target]) -> set[Target]:
        """Return the $ref targets that some position uses in place; close objects when `close` is set."""
        for uri, pointer in roots:
            self._target((uri, pointer), in_place=False)
        return self.found

    def _target(self, target: Target, *, in_place: bool) -> None:
        flag = in_place or target in self.in_place_targets
        if (target, flag) in self.seen:
            return
        self.seen.add((target, flag))
        self._node(_pointer_get(self.docs[target[0]], target[1]), target[0], in_place=flag)

    def _node(self, node: Any, base: str, *, in_place: bool) -> None:
        if not isinstance(node, dict):
            return
        alternatives_in_place = _alternatives_in_place(node, in_place)
        ref_in_place = _ref_in_place(node, in_place)
        if self.close and not in_place:
            self._close(node, base)
        if "$ref" in node:
            target, _ = _resolve(self.docs, base, node["$ref"])
            if ref_in_place:
                self.found.add(target)
            self._target(target, in_place=ref_in_place)
        for member in node.get("allOf", ()):
            self._node(member, base, in_place=True)
        for key in ("oneOf", "anyOf"):
            for member in node.get(key, ()):
                self._node(member, base, in_place=alternatives_in_place)
        for child in _new_instance_children(node):
            self._node(child, base, in_place=False)

    def _close(self, node: dict[str, Any], base: str) -> None:
        """Allow only the keys that `node` and its in-place parts declare (listed here, so no annotations needed)."""
        if any(key in node for key in _OPEN_KEYS):
            return
        names = self._declared_names(node, base, in_place=False, visiting=set())
        if not names:
            return
        properties = node.setdefault("properties", {})
        for name in sorted(names - properties.keys()):
            properties[name] = True
        node["additionalProperties"] = False

    def _declared_names(self, node: Any, base: str, *, in_place: bool, visiting: set[int]) -> set[str] | None:
        """Keys declared by `node` and the parts it composes in place; None when a part accepts any key."""
        if not isinstance(node, dict) or id(node) in visiting:
            return set()
        visiting.add(id(node))
        if in_place and any(node.get(key, False) is not False for key in _OPEN_KEYS):
            return None
        names = set(node.get("properties", ()))
        parts = [(member, base) for member in node.get("allOf", ())]
        if _alternatives_in_place(node, in_place):
            parts += [(member, base) for key in ("oneOf", "anyOf") for member in node.get(key, ())]
        if "$ref" in node:
            target, resolved = _resolve(self.docs, base, node["$ref"])
            if in_place or target in self.in_place_targets:
                parts.append((resolved, target[0]))
        for part, part_base in parts:
            found = self._declared_names(part, part_base, in_place=True, visiting=visiting)
            if found is None:
                return None
            names |= found
        return names


def _new_instance_children(node: Mapping[str, Any]) -> Iterator[Any]:
    """Subschemas that apply to another instance (a property value, an array item), not to this one."""
    for key in _SUBSCHEMA_KEYS:
        if isinstance(node.get(key), dict):
            yield node[key]
    for key in _SUBSCHEMA_MAP_KEYS:
        if isinstance(node.get(key), dict):
            yield from node[key].values()
    yield from node.get("prefixItems", ())


def _fail_fast(node: Any) -> None:
    """Run cheap keywords (type, enum, properties) before composed ones, and inline allOf parts before `$ref`s.

    Results do not depend on keyword order, but time does: jsonschema checks a oneOf branch keyword by keyword
    and stops at the first error, so a mapping property is told apart by its `type` before the shared base
    schemas recurse into sub-properties (0.5 s → a few ms per mapping).
    """
    if isinstance(node, list):
        for item in node:
            _fail_fast(item)
    elif isinstance(node, dict):
        for value in node.values():
            _fail_fast(value)
        if isinstance(node.get("allOf"), list):
            node["allOf"].sort(key=lambda member: isinstance(member, dict) and "$ref" in member)
        for key in ("$ref", "allOf", "anyOf", "oneOf"):
            if key in node:
                node[key] = node.pop(key)


def _close_objects(docs: Docs, roots: Sequence[Target]) -> None:
    in_place: set[Target] = set()
    while True:
        found = _Walk(docs, in_place, close=False).run(roots)
        if found <= in_place:
            break
        in_place |= found
    _Walk(docs, in_place, close=True).run(roots)


# --- validators -----------------------------------------------------------------------------------------


def _root(kind: str) -> Target:
    if kind not in _REQUESTS:
        raise KeyError(f"unknown request {kind!r}; choose one of {', '.join(REQUESTS)}")
    relative, pointer = _REQUESTS[kind]
    return _uri(relative), pointer


def build_registry(docs: Docs, gaps: Mapping[str, Gap], roots: Sequence[Target], mode: Mode) -> Registry:
    """A registry of `docs` in `mode`: gaps patched (strict), objects closed from `roots` (not raw), fast first."""
    if mode == "strict":
        for gap in gaps.values():
            gap.patch(docs)
    if mode != "raw":
        _close_objects(docs, roots)
    _fail_fast(docs)
    resources = [(uri, Resource.from_contents(doc, default_specification=DRAFT202012)) for uri, doc in docs.items()]
    return Registry().with_resources(resources)


@dataclass(frozen=True, slots=True)
class Checker:
    """Validation of request bodies, and of the lines of NDJSON bodies, against one engine's spec."""

    engine: str
    root: Callable[[str], Target]
    registry: Callable[[Mode], Registry]

    def errors(self, kind: str, body: Any, *, mode: Mode = "strict") -> list[str]:
        """Every violation as `path: message`; empty when the spec accepts the body."""
        found = list(_validator(self, kind, mode).iter_errors(body))
        if not found:
            return []
        ordered = [best_match(found), *found]
        return list(dict.fromkeys(f"{error.json_path}: {error.message}" for error in ordered))

    def validate(self, kind: str, body: Any, *, mode: Mode = "strict") -> None:
        """Raise SpecViolation, naming the closest violation first, unless the spec accepts `body` as `kind`."""
        problems = self.errors(kind, body, mode=mode)
        if problems:
            raise SpecViolation(f"{kind} body rejected by the {self.engine} spec ({mode}):\n  "
                                + "\n  ".join(problems))

    def validate_msearch(self, lines: Sequence[Mapping[str, Any]], *, mode: Mode = "strict") -> None:
        """An `_msearch` body: header, body, header, body, ... each checked against its own schema."""
        if not lines or len(lines) % 2:
            raise SpecViolation(f"_msearch needs header/body pairs, got {len(lines)} lines")
        for number, line in enumerate(lines):
            self.validate("msearch.body" if number % 2 else "msearch.header", line, mode=mode)

    def validate_bulk(self, lines: Sequence[Mapping[str, Any]], *, mode: Mode = "strict") -> None:
        """A `_bulk` body: each action line, then its document (index/create), partial update (update) or
        nothing."""
        number = 0
        while number < len(lines):
            action = lines[number]
            self.validate("bulk.action", action, mode=mode)
            (operation,) = action
            if operation == "delete":
                number += 1
                continue
            if number + 1 >= len(lines):
                raise SpecViolation(f"bulk {operation} action on line {number + 1} has no source line")
            source = lines[number + 1]
            if operation == "update":
                self.validate("bulk.update", source, mode=mode)
            elif not isinstance(source, Mapping):
                raise SpecViolation(f"bulk {operation} source on line {number + 2} must be a JSON object")
            number += 2


@functools.cache
def _validator(checker: Checker, kind: str, mode: Mode) -> Draft202012Validator:
    uri, pointer = checker.root(kind)
    return Draft202012Validator({"$ref": f"{uri}#{pointer}"}, registry=checker.registry(mode))


@functools.cache
def _registry(mode: Mode) -> Registry:
    return build_registry(_load_docs(), KNOWN_GAPS, [_root(kind) for kind in REQUESTS], mode)


OPENSEARCH = Checker("OpenSearch", _root, _registry)
errors = OPENSEARCH.errors
validate = OPENSEARCH.validate
validate_msearch = OPENSEARCH.validate_msearch
validate_bulk = OPENSEARCH.validate_bulk
