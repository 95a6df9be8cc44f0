"""hambench's own import-linter contract type (``contract_types`` in pyproject.toml).

``acyclic_modules``: no import cycle between any two modules of the root packages. import-linter's
``acyclic_siblings`` compares the children of each package only, so a package's ``__init__`` and
one of its own modules importing each other (``hambench.tasks`` <-> ``hambench.tasks.seg``) is no
cycle to it; this contract reads the module graph itself. .ci/lint puts this folder on PYTHONPATH.
"""

from __future__ import annotations

from collections.abc import Iterator

import grimp
from importlinter import Contract, ContractCheck, output


def strongly_connected(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """The groups of two or more ``modules`` that reach each other by imports (Tarjan's algorithm,
    iterative: the package's chains are short, but a recursion limit is no way to fail)."""
    imports = {m: sorted(graph.find_modules_directly_imported_by(m) & modules) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in sorted(modules):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(imports[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, todo = work[-1]
            following = next(todo, None)
            if following is not None:
                if following not in index:
                    index[following] = low[following] = len(index)
                    stack.append(following)
                    on_stack.add(following)
                    work.append((following, iter(imports[following])))
                elif following in on_stack:
                    low[module] = min(low[module], index[following])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == module:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return sorted(groups)


def shortest_cycle(graph: grimp.ImportGraph, group: list[str]) -> tuple[str, ...]:
    """One shortest cycle through the group's first module: start -> ... -> start."""
    start = group[0]
    cycles = []
    for following in sorted(graph.find_modules_directly_imported_by(start) & set(group)):
        back = graph.find_shortest_chain(following, start)
        if back:
            cycles.append((start, *back))
    return min(cycles, key=len)


class AcyclicModulesContract(Contract):
    """No import cycle among the modules of the root packages (external packages aside)."""

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        ours = {m for m in graph.modules if not graph.is_module_squashed(m)}
        cycles = [shortest_cycle(graph, group) for group in strongly_connected(graph, ours)]
        details = [
            [
                (a, b, sorted({d["line_number"] for d in graph.get_import_details(importer=a, imported=b)}))
                for a, b in zip(cycle, cycle[1:])
            ]
            for cycle in cycles
        ]
        return ContractCheck(kept=not cycles, metadata={"cycles": details})

    def render_broken_contract(self, check: ContractCheck) -> None:
        cycles = check.metadata["cycles"]
        output.print_error(f"{len(cycles)} import cycle(s) among modules; one shortest cycle of each:", bold=False)
        output.new_line()
        for cycle in cycles:
            for importer, imported, lines in cycle:
                where = f" (l.{', l.'.join(map(str, lines))})" if lines else ""
                output.print_error(f"-   {importer} -> {imported}{where}", bold=False)
            output.new_line()
