"""The Cell Ontology as a DAG of plain dicts: ancestors, descendants, LCA and distances.

pronto's own traversal is slow (seconds for a few thousand queries), so the edges are
copied once into parent/child dictionaries per relation and every walk runs over those.
Only `CL:` terms are nodes; edges to other ontologies are dropped when loading.

Distance (used by MAFP, d / d_max): the length of the shortest path between two terms that
goes *up* from each to a common ancestor, d(a, b) = min over common ancestors c of
d_up(a, c) + d_up(b, c), with d_up the shortest upward path over the chosen relations.
This is the path "via the LCA"; unlike the plain undirected shortest path it never walks
down into a shared descendant (two unrelated types that share a multiply-inherited child
would otherwise be at distance 2). For one term the ancestor of the other it equals the
upward path length. Terms with no common ancestor (CL has a few extra roots besides
CL:0000000 "cell") are joined through a virtual super-root one step above every root.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scatlas.errors import ScatlasError

ROOT = "CL:0000000"
DEFAULT_RELATIONS: tuple[str, ...] = ("is_a", "part_of")
#: CL's subset of "abstract upper-level terms not directly useful for analysis"
UPPER_LEVEL_SUBSET = "ubprop:upper_level"
#: a term above more than this share of all current terms is too general to be an answer
_GENERAL_SHARE = 0.5


class UnknownTermError(ScatlasError, KeyError):
    """A term id that is not in the ontology."""

    def __init__(self, cl_id: str, source: str = ""):
        self.cl_id = cl_id
        where = f" ({source})" if source else ""
        super().__init__(f"unknown Cell Ontology term {cl_id!r}{where}")

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


@dataclass(frozen=True)
class TermInfo:
    """What scatlas needs of one term: name, synonyms (text, scope), obsolescence
    (``replaced_by``, ``consider``), subsets, and the anatomy it is part of (ids of other
    ontologies, e.g. UBERON, from ``part_of`` relationships and ``intersection_of``)."""

    id: str
    name: str
    synonyms: tuple[tuple[str, str], ...] = ()
    obsolete: bool = False
    replaced_by: tuple[str, ...] = ()
    alternate_ids: tuple[str, ...] = ()
    consider: tuple[str, ...] = ()
    subsets: tuple[str, ...] = ()
    anatomy: tuple[str, ...] = ()


class CellOntology:
    """A loaded Cell Ontology: term data plus precomputed adjacency per relation.

    ``edges`` maps a relation name ("is_a", "part_of", ...) to {child: {parents}}.
    Term ids given to the graph methods are resolved first: an obsolete term with a
    ``replaced_by`` stands for its replacement; an unknown id raises `UnknownTermError`.
    """

    def __init__(
        self,
        terms: Mapping[str, TermInfo],
        edges: Mapping[str, Mapping[str, Iterable[str]]],
        *,
        source: str = "",
        version: str = "",
    ):
        self._terms: dict[str, TermInfo] = dict(terms)
        self.source = source
        self.version = version
        # what another release added to this one (`scatlas.ontology.supplement`), if any
        self.supplemented_from = ""
        self._parents: dict[str, dict[str, frozenset[str]]] = {}
        self._children: dict[str, dict[str, set[str]]] = {}
        for rel, mapping in edges.items():
            par: dict[str, frozenset[str]] = {}
            chi: dict[str, set[str]] = {}
            for child, parents in mapping.items():
                kept = frozenset(p for p in parents if p in self._terms and p != child)
                if child not in self._terms or not kept:
                    continue
                par[child] = kept
                for p in kept:
                    chi.setdefault(p, set()).add(child)
            self._parents[rel] = par
            self._children[rel] = chi
        self._alt: dict[str, str] = {
            alt: t.id
            for t in self._terms.values()
            for alt in t.alternate_ids
            if alt not in self._terms
        }
        self._walk_cache: dict[tuple[str, str, tuple[str, ...]], frozenset[str]] = {}
        self._up_cache: dict[tuple[str, tuple[str, ...]], dict[str, int]] = {}
        self._general: frozenset[str] | None = None

    # --- term data -------------------------------------------------------------------

    def __contains__(self, cl_id: object) -> bool:
        return isinstance(cl_id, str) and cl_id in self._terms

    def __len__(self) -> int:
        return len(self._terms)

    @property
    def relations(self) -> tuple[str, ...]:
        return tuple(sorted(self._parents))

    def term_ids(self, include_obsolete: bool = False) -> list[str]:
        """All term ids, sorted (obsolete ones only on request)."""
        return sorted(t for t, info in self._terms.items() if include_obsolete or not info.obsolete)

    def info(self, cl_id: str) -> TermInfo:
        """The term's data, without resolving obsolete ids."""
        try:
            return self._terms[cl_id]
        except KeyError:
            alt = self._alt.get(cl_id)
            if alt is None:
                raise UnknownTermError(cl_id, self.source) from None
            return self._terms[alt]

    def label(self, cl_id: str) -> str:
        """The term's name (of the term itself, obsolete or not)."""
        return self.info(cl_id).name

    def resolve(self, cl_id: str, consider: bool = True) -> str | None:
        """The current id for ``cl_id``: itself, the primary id of an alternate id, or the
        replacement of an obsolete term, followed transitively: its single CL
        ``replaced_by``, else (``consider``) its single CL ``consider`` term. None when
        the id is unknown, or obsolete without a single CL successor."""
        seen: set[str] = set()
        current = self._alt.get(cl_id, cl_id)
        while current not in seen:
            seen.add(current)
            info = self._terms.get(current)
            if info is None:
                return None
            if not info.obsolete:
                return current
            nxt = [r for r in info.replaced_by if r in self._terms or r in self._alt]
            if not nxt and not info.replaced_by and consider:
                nxt = [r for r in info.consider if r in self._terms or r in self._alt]
            if len(nxt) != 1:
                return None
            current = self._alt.get(nxt[0], nxt[0])
        return None

    def is_informative(self, cl_id: str) -> bool:
        """False for terms too general to describe a cell type: the root, CL's
        upper-level subset, and terms above more than half of all current terms
        ("native cell", "animal cell", "somatic cell", ...)."""
        node = self._node(cl_id)
        if self._general is None:
            limit = _GENERAL_SHARE * len(self.term_ids())
            self._general = frozenset(
                t
                for t, info in self._terms.items()
                if not info.obsolete
                and (
                    t == ROOT
                    or UPPER_LEVEL_SUBSET in info.subsets
                    or len(self._walk(t, "down", DEFAULT_RELATIONS)) > limit
                )
            )
        return node not in self._general

    def _node(self, cl_id: str) -> str:
        if cl_id not in self._terms and cl_id not in self._alt:
            raise UnknownTermError(cl_id, self.source)
        return self.resolve(cl_id) or self._alt.get(cl_id, cl_id)

    # --- traversal -------------------------------------------------------------------

    def _rels(self, relations: Iterable[str]) -> tuple[str, ...]:
        rels = (relations,) if isinstance(relations, str) else tuple(relations)
        return tuple(sorted(set(rels)))

    def parents(self, cl_id: str, relations: Iterable[str] = DEFAULT_RELATIONS) -> set[str]:
        node = self._node(cl_id)
        out: set[str] = set()
        for rel in self._rels(relations):
            out |= self._parents.get(rel, {}).get(node, frozenset())
        return out

    def children(self, cl_id: str, relations: Iterable[str] = DEFAULT_RELATIONS) -> set[str]:
        node = self._node(cl_id)
        out: set[str] = set()
        for rel in self._rels(relations):
            out |= self._children.get(rel, {}).get(node, set())
        return out

    def _walk(self, node: str, direction: str, rels: tuple[str, ...]) -> frozenset[str]:
        key = (node, direction, rels)
        hit = self._walk_cache.get(key)
        if hit is not None:
            return hit
        tables = [(self._parents if direction == "up" else self._children).get(r, {}) for r in rels]
        seen: set[str] = set()
        stack = [node]
        while stack:
            cur = stack.pop()
            for table in tables:
                for nxt in table.get(cur, ()):
                    if nxt not in seen:
                        seen.add(nxt)
                        stack.append(nxt)
        seen.discard(node)
        result = frozenset(seen)
        self._walk_cache[key] = result
        return result

    def ancestors(
        self, cl_id: str, relations: Iterable[str] = DEFAULT_RELATIONS, include_self: bool = False
    ) -> set[str]:
        node = self._node(cl_id)
        out = set(self._walk(node, "up", self._rels(relations)))
        if include_self:
            out.add(node)
        return out

    def descendants(
        self, cl_id: str, relations: Iterable[str] = DEFAULT_RELATIONS, include_self: bool = False
    ) -> set[str]:
        node = self._node(cl_id)
        out = set(self._walk(node, "down", self._rels(relations)))
        if include_self:
            out.add(node)
        return out

    def is_ancestor(
        self, ancestor: str, descendant: str, relations: Iterable[str] = DEFAULT_RELATIONS
    ) -> bool:
        """True when ``ancestor`` is a proper ancestor of ``descendant``."""
        na, nd = self._node(ancestor), self._node(descendant)
        return na != nd and na in self._walk(nd, "up", self._rels(relations))

    def is_related(self, a: str, b: str, relations: Iterable[str] = DEFAULT_RELATIONS) -> bool:
        """True when a == b or one is an ancestor of the other."""
        na, nb = self._node(a), self._node(b)
        if na == nb:
            return True
        rels = self._rels(relations)
        return nb in self._walk(na, "up", rels) or na in self._walk(nb, "up", rels)

    def _up_distances(self, node: str, rels: tuple[str, ...]) -> dict[str, int]:
        """Shortest upward path length from ``node`` to each ancestor (itself at 0)."""
        key = (node, rels)
        hit = self._up_cache.get(key)
        if hit is not None:
            return hit
        tables = [self._parents.get(r, {}) for r in rels]
        dist = {node: 0}
        queue = deque([node])
        while queue:
            cur = queue.popleft()
            for table in tables:
                for p in table.get(cur, ()):
                    if p not in dist:
                        dist[p] = dist[cur] + 1
                        queue.append(p)
        self._up_cache[key] = dist
        return dist

    def _root_distance(self, up: dict[str, int], rels: tuple[str, ...]) -> int:
        """Shortest distance from a node to any root (a node without parents)."""
        tables = [self._parents.get(r, {}) for r in rels]
        return min(d for n, d in up.items() if not any(n in t for t in tables))

    def depth(self, cl_id: str, relations: Iterable[str] = DEFAULT_RELATIONS) -> int:
        """Shortest upward path length to a root (0 for a root)."""
        rels = self._rels(relations)
        return self._root_distance(self._up_distances(self._node(cl_id), rels), rels)

    def lca(self, a: str, b: str, relations: Iterable[str] = DEFAULT_RELATIONS) -> str | None:
        """The common ancestor (terms themselves included) with the shortest combined upward
        path; ties go to the deeper term, then the smaller id. None when there is none."""
        rels = self._rels(relations)
        ua = self._up_distances(self._node(a), rels)
        ub = self._up_distances(self._node(b), rels)
        common = ua.keys() & ub.keys()
        if not common:
            return None
        return min(
            common,
            key=lambda c: (
                ua[c] + ub[c],
                -self._root_distance(self._up_distances(c, rels), rels),
                c,
            ),
        )

    def distance(self, a: str, b: str, relations: Iterable[str] = DEFAULT_RELATIONS) -> int:
        """d(a, b) = min over common ancestors c of d_up(a, c) + d_up(b, c) (see module doc)."""
        rels = self._rels(relations)
        ua = self._up_distances(self._node(a), rels)
        ub = self._up_distances(self._node(b), rels)
        common = ua.keys() & ub.keys()
        if common:
            return min(ua[c] + ub[c] for c in common)
        # disconnected: through a virtual super-root one step above every root
        return self._root_distance(ua, rels) + self._root_distance(ub, rels) + 2

    def lowest_common_ancestors(
        self, terms: Iterable[str], relations: Iterable[str] = DEFAULT_RELATIONS
    ) -> set[str]:
        """The minimal common ancestors of ``terms`` (the terms themselves included): common
        ancestors that are not an ancestor of another common ancestor. In a DAG there may be
        several; none when the terms share no ancestor."""
        rels = self._rels(relations)
        nodes = {self._node(t) for t in terms}
        if not nodes:
            return set()
        common: set[str] | None = None
        for n in nodes:
            up = set(self._walk(n, "up", rels)) | {n}
            common = up if common is None else common & up
        assert common is not None
        covered: set[str] = set()
        for c in common:
            covered |= self._walk(c, "up", rels)
        return common - covered

    def related_pairs(
        self, terms: Iterable[str], relations: Iterable[str] = DEFAULT_RELATIONS
    ) -> set[tuple[str, str]]:
        """Ordered pairs (a, b), a != b, of ``terms`` where one is an ancestor of the other:
        pairs that triplet mining must not use as negatives (ids as given)."""
        given = list(dict.fromkeys(terms))
        out: set[tuple[str, str]] = set()
        for a, b in itertools.combinations(given, 2):
            if self.is_related(a, b, relations):
                out.add((a, b))
                out.add((b, a))
        return out

    def max_distance(
        self, terms: Iterable[str], relations: Iterable[str] = DEFAULT_RELATIONS
    ) -> int:
        """The largest pairwise distance among ``terms`` (0 for fewer than two terms)."""
        nodes = sorted({self._node(t) for t in terms})
        return max(
            (self.distance(a, b, relations) for a, b in itertools.combinations(nodes, 2)),
            default=0,
        )

    def most_specific(
        self, terms: Iterable[str], relations: Iterable[str] = DEFAULT_RELATIONS
    ) -> set[str]:
        """``terms`` without those that are ancestors of another term in the set."""
        nodes = {self._node(t) for t in terms}
        if len(nodes) < 2:
            return nodes  # one term: nothing to be the ancestor of
        rels = self._rels(relations)
        covered: set[str] = set()
        for n in nodes:
            covered |= self._walk(n, "up", rels)
        return nodes - covered
