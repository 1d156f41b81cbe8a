"""Finds import cycles in the crate's src/ (issue 22): none between top-level modules, and none
between the files of one module.

Every module with children is checked the same way: the crate root (lib.rs and the top-level
modules), and each module directory (its mod.rs, or the x.rs beside an x/ directory, and its
children: files, and subdirectories taken whole). One of them depends on another when its code
names a path into it:

- `crate::a::b`, `crate::{a, b::c}`, `super::x`, `super::super::x`, `self::x`, `super::*`
  (a glob from the parent is a dependency on the parent's own file);
- a child named without a prefix (`options::lookup`, `use build::build_all`) in the file of the
  module that has that child;
- `crate::info` and the other `#[macro_export]` macros, which depend on the module defining them.

A path to an item of a module (`super::Notice`, `crate::config::Config`) depends on that
module's own file, even when the item is only re-exported there. Comments, string and character
literals, and `#[cfg(test)]` modules written inline (`mod tests { ... }`) are left out.

    python3 tools/import_cycles.py [SRC]    # SRC: the crate's src/ (default: the one beside tools/)

Exits 1 and prints each cycle, with where each step of it imports the next, when there is one.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict, deque
from itertools import pairwise
from pathlib import Path

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SEPARATOR = re.compile(r"\s*::")
RAW_STRING = re.compile(r'b?r(#*)"')


def blank(text: str) -> str:
    """The text with comments and the insides of string and character literals replaced by
    spaces (newlines kept, so line numbers stay right)."""
    out = list(text)
    i, n = 0, len(text)

    def clear(start: int, end: int) -> None:
        for k in range(start, end):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            clear(i, end)
            i = end
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            clear(i, j)
            i = j
        elif (raw := RAW_STRING.match(text, i)) and not re.match(r"\w", text[i - 1 : i]):
            close = '"' + raw.group(1)
            end = text.find(close, i + len(raw.group(0)))
            end = n if end < 0 else end
            clear(i + len(raw.group(0)), end)
            i = end + len(close)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            clear(i + 1, j)
            i = j + 1
        elif c == "'":
            # A character literal ('{', '\n', '\u{7f}'), or else a lifetime or label ('a).
            if text.startswith("\\", i + 1):
                end = text.find("'", i + 3)
            elif text.startswith("'", i + 2):
                end = i + 2
            else:
                i += 1
                continue
            clear(i + 1, end)
            i = end + 1
        else:
            i += 1
    return "".join(out)


def block_end(text: str, open_brace: int) -> int:
    """The position after the `}` closing the `{` at `open_brace` (in blanked text)."""
    depth = 0
    for k in range(open_brace, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return k + 1
    return len(text)


def without_test_modules(text: str) -> str:
    """Blanked text with each inline `#[cfg(test)] mod NAME { ... }` replaced by spaces."""
    pattern = re.compile(
        r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{"
    )
    while match := pattern.search(text):
        end = block_end(text, match.end() - 1)
        text = text[: match.start()] + re.sub(r"[^\n]", " ", text[match.start() : end]) + text[end:]
    return text


def use_tree(text: str, i: int) -> tuple[list[list[str]], int]:
    """The paths of the use tree (or plain path) starting at `i`, just after a `::`:
    `a::b`, `{a, b::{c, d}}`, `*`. Returns them and where the tree ends."""
    while i < len(text) and text[i].isspace():
        i += 1
    if text.startswith("*", i):
        return [["*"]], i + 1
    if text.startswith("{", i):
        paths, i = [], i + 1
        while i < len(text) and text[i] != "}":
            if text[i] in ", \t\n":
                i += 1
                continue
            inner, i = use_tree(text, i)
            paths += inner
            # `a as b`, or anything else up to the next item.
            while i < len(text) and text[i] not in ",}":
                i += 1
        return paths, i + 1
    name = NAME.match(text, i)
    if not name:
        return [[]], i
    rest = SEPARATOR.match(text, name.end())
    if not rest:
        return [[name.group()]], name.end()
    tails, end = use_tree(text, rest.end())
    return [[name.group(), *tail] for tail in tails], end


class Crate:
    """The modules of src/, and what each file of them refers to."""

    def __init__(self, src: Path):
        self.src = src
        self.files: dict[tuple[str, ...], Path] = {}
        for path in sorted(src.rglob("*.rs")):
            parts = path.relative_to(src).with_suffix("").parts
            if parts in (("lib",), ("main",)):
                parts = ()
            elif parts[-1] == "mod":
                parts = parts[:-1]
            self.files[parts] = path
        self.macros: dict[str, tuple[str, ...]] = {}
        self.texts: dict[tuple[str, ...], str] = {}
        for module, path in self.files.items():
            text = without_test_modules(blank(path.read_text()))
            # `pub(in crate::a)` names a module it does not import.
            text = re.sub(r"pub\s*\(\s*in\s[^)]*\)", lambda m: " " * len(m.group()), text)
            self.texts[module] = text
            for name in re.findall(r"#\[macro_export\]\s*macro_rules!\s*(\w+)", text):
                self.macros[name] = module

    def children(self, module: tuple[str, ...]) -> list[str]:
        return [m[-1] for m in self.files if len(m) == len(module) + 1 and m[:-1] == module]

    def resolve(self, here: tuple[str, ...], path: list[str]) -> tuple[str, ...] | None:
        """The module whose file a path (as written in module `here`) leads to; None when it
        leaves the crate."""
        at = list(here)
        while path and path[0] in ("crate", "$crate", "super", "self"):
            if path[0] == "super":
                if not at:
                    return None
                at.pop()
            elif path[0] != "self":
                at = []
            path = path[1:]
        target = tuple(at)
        for segment in path:
            if target + (segment,) not in self.files:
                break
            target += (segment,)
        if target == () and path and path[0] in self.macros:
            return self.macros[path[0]]
        return target

    def references(self, module: tuple[str, ...]):
        """(module referred to, line, path as written) for each path in the module's file."""
        text = self.texts[module]
        inline = [
            (m.group(1), m.end() - 1, block_end(text, m.end() - 1))
            for m in re.finditer(r"\bmod\s+(\w+)\s*\{", text)
        ]
        taken = []
        anchored = re.compile(r"(?<![\w$:])(\$?crate|super|self)\s*::")
        children = self.children(module)
        bare = re.compile(r"(?<![\w$:])(" + "|".join(children) + r")\s*::") if children else None
        for pattern in (anchored, bare):
            for match in pattern.finditer(text) if pattern else ():
                if any(start <= match.start() < end for start, end in taken):
                    continue
                paths, end = use_tree(text, match.end())
                taken.append((match.start(), end))
                here = module + tuple(
                    name for name, start, stop in inline if start <= match.start() < stop
                )
                if pattern is bare and len(here) > len(module):
                    continue  # a child's name inside an inline module: not this file's child
                line = text.count("\n", 0, match.start()) + 1
                for path in paths:
                    target = self.resolve(here, [match.group(1), *path])
                    if target is not None:
                        written = "::".join([match.group(1), *path])
                        yield target, line, re.sub(r"\s+", "", written)


def part(crate: Crate, parent: tuple[str, ...], module: tuple[str, ...]) -> str | None:
    """Which part of `parent` a module is in: the parent's own file, or one of its children
    with all that is under it (None: outside `parent`). Shown as its file, or as `dir/` for a
    child with children of its own."""
    if module[: len(parent)] != parent:
        return None
    module = module[: len(parent) + 1]
    if module != parent and crate.children(module):
        return "/".join(module) + "/"
    return str(crate.files[module].relative_to(crate.src))


def graphs(crate: Crate) -> dict[str, dict[str, dict[str, str]]]:
    """For each module with children, named by its directory: which of its parts imports which,
    with where it first does."""
    found = {}
    for parent in sorted({m[:-1] for m in crate.files if m}):
        edges: dict[str, dict[str, str]] = defaultdict(dict)
        for module in crate.files:
            source = part(crate, parent, module)
            for target, line, written in crate.references(module) if source else ():
                dest = part(crate, parent, target)
                if dest is not None and dest != source:
                    where = f"{crate.files[module].relative_to(crate.src)}:{line}: {written}"
                    edges[source].setdefault(dest, where)
        found["/".join(parent) + "/" if parent else "the crate root"] = edges
    return found


def chain(edges: dict[str, dict[str, str]], start: str, end: str) -> list[str] | None:
    """A shortest chain of imports from `start` to `end` (a cycle when they are the same), as
    the parts on it."""
    before = {start: start}
    queue = deque([start])
    while queue:
        at = queue.popleft()
        for nxt in sorted(edges.get(at, ())):
            if nxt not in before:
                before[nxt] = at
                queue.append(nxt)
            if nxt == end:
                parts = [end, at]
                while parts[-1] != start:
                    parts.append(before[parts[-1]])
                return parts[::-1]
    return None


def tangles(edges: dict[str, dict[str, str]]) -> list[tuple[list[str], set[str]]]:
    """The groups of parts that all import each other, through any chain (strongly connected
    components), each with its shortest cycle."""
    reach = {}
    for start in edges:
        seen, queue = set(), deque([start])
        while queue:
            for nxt in edges.get(queue.popleft(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        reach[start] = seen
    found, done = [], set()
    for start in sorted(reach):
        if start in done or start not in reach[start]:
            continue
        group = {p for p in reach[start] if start in reach.get(p, ())}
        done |= group
        cycle = min((chain(edges, p, p) for p in sorted(group)), key=len)
        found.append((cycle, group))
    return found


def main() -> int:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "src"
    crate = Crate(src)
    failed = False
    for group, edges in graphs(crate).items():
        for cycle, tangle in tangles(edges):
            print(f"import cycle between the parts of {group}: " + " -> ".join(cycle))
            for a, b in pairwise(cycle):
                print(f"    {edges[a][b]}")
            if len(tangle) > len(cycle) - 1:
                print(f"  and through it, {len(tangle)} parts in all: " + ", ".join(sorted(tangle)))
            failed = True
    if not failed:
        print(f"no import cycle in {src} ({len(crate.files)} files)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
