"""Mutation testing of pepm's core: how many small bugs planted in a module do the tests catch?

    .venv/bin/python scripts/mutation.py                       # every module below, every mutant
    .venv/bin/python scripts/mutation.py --module split --module metrics --jobs 2 --json mutation.json
    .venv/bin/python scripts/mutation.py --module config --sample 80 --seed 1
    .venv/bin/python scripts/mutation.py --list                # the mutants, without running anything

Not part of CI (it runs the tests once per mutant). docs/mutation.md says how to read the output and
records the last measurement. In short:

1. The working tree (tracked and untracked, not ignored, files, plus the compiled modules) is
   copied to a temporary folder, once per worker (--jobs); the checkout itself is never written.
2. Mapping: the candidate tests (--tests, default the whole suite) run once in the copies, sharded
   over the workers, under a line tracer (coverage.py when installed, else sys.settrace) that
   records which test executes which line of the mutated modules, and how long each test takes.
   Cached (~/.cache/pepm-mutation) until a file of pepm_assets/, pepm_assets_tests/ or configs/ changes.
3. Mutants: the module's source is parsed (ast) and each mutation (operators: OPERATORS) is one
   textual edit of the file, checked by re-parsing: the mutated tree must be exactly the intended one.
4. Each mutant runs, in a worker copy, the tests that execute its line (fastest first, stopping at
   the first failure); a mutant in module- or class-level code (a pydantic Field bound, a default
   argument) runs every test that executes the module. Tests slower than --max-test-seconds, or
   failing without any mutant, are left out. The worker has the third-party libraries imported once
   and forks per mutant, so a mutant costs its tests, not the imports. Timeout per mutant:
   --timeout-factor x the selected tests' mapped time, plus the start-up time.
5. Verdicts: killed (a test failed), timeout, error (the tests could not even be collected, e.g. the
   module no longer imports): all three are caught. survived: every selected test passed; no-tests:
   no test executes the line (counted as survived). equivalent: a survivor listed in EQUIVALENT below
   (it behaves exactly like the original), left out of the score.
   score = caught / (mutants - equivalent).
"""

from __future__ import annotations

import argparse
import ast
import compileall
import contextlib
import datetime as dt
import glob
import hashlib
import importlib
import importlib.util
import io
import json
import os
import py_compile
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve()
PROJECT_PACKAGES = ("pepm_assets", "pepm_assets_tests", "scripts")

# module name -> files (globs relative to the repository root)
MODULES: dict[str, list[str]] = {
    "split": ["pepm_assets/core/split.py"],
    "balance": ["pepm_assets/core/balance/*.py"],
    "labels": ["pepm_assets/core/labels.py"],
    "prepare": ["pepm_assets/core/prepare.py"],
    "metrics": ["pepm_assets/core/metrics.py"],
    "config": ["pepm_assets/core/config/*.py"],
}

OPERATORS = {
    "cmp": "comparison flipped: < <=, > >=, == !=, in / not in, is / is not",
    "arith": "arithmetic / bitwise operator swapped: + -, * /, // /, % *, ** *, & |, << >>",
    "augassign": "augmented assignment swapped: += -=, *= /=, ...",
    "bool": "and <-> or",
    "unary": "not / ~ / unary - removed",
    "const": "number or boolean changed: 0 -> 1, 1 -> 0, n -> n + 1, x.y -> x.y + 1, True <-> False",
    "return": "return <value> -> return None",
    "remove": "statement replaced by pass: a call statement, continue, break, raise, del, a store into x[...] or x.attr",
    "slice": "slice bound removed, or moved by one",
    "cond": "if / while / ternary / comprehension condition negated (a plain condition; comparisons and and/or have their own operators)",
    "str": "string constant changed (off by default: --strings; most strings are messages)",
}
DEFAULT_OPERATORS = [op for op in OPERATORS if op != "str"]

# Survivors judged equivalent: the mutated program behaves exactly like the original (so no test can
# tell them apart). Key: "<path> | <first source line of the mutated code, stripped> | <original> -> <mutated>"
# (the form the report prints with --show-keys); value: why. A listed mutant that gets killed is
# reported (it was not equivalent) and counted as killed.
EQUIVALENT: dict[str, str] = {
    **dict.fromkeys(
        (
            'pepm_assets/core/labels.py | out.loc[ok & allowed, "label"] = values[ok & allowed] | ok & allowed -> ok | allowed',
            'pepm_assets/core/labels.py | out.loc[ok & allowed, "label"] = values[ok & allowed] | ok & allowed -> ok | allowed #2',
        ),
        "either `&` of the line: pandas aligns the assigned Series on the index, so the rows written are"
        " those of the mask on the left and the values those of the same rows; the rows a wider mask adds"
        " get the missing value (NaN) they already had",
    ),
    **dict.fromkeys(
        (
            "pepm_assets/core/metrics.py | tp = np.diagonal(cms[:, :, :k], axis1=1, axis2=2) | k -> k + 1",
            "pepm_assets/core/metrics.py | acc = np.diagonal(cms[:, :, :k], axis1=1, axis2=2).sum(axis=1) / np.maximum(sizes, 1) | k -> k + 1",
        ),
        "the matrices have k + 1 columns, so [:k + 1] takes them all, and the diagonal of a k x (k + 1)"
        " matrix is its first k diagonal cells either way",
    ),
    'pepm_assets/core/prepare.py | cols = [*TSV_BASE[:2], params.dataset.source_field, *TSV_BASE[2:], *params.compare_by, *group, *key, "text"] | 2: -> :': (
        "the two first columns, repeated, are dropped again by dict.fromkeys on the next line (first occurrence kept)"
    ),
    "pepm_assets/core/prepare.py | if cap is not None and len(df) > cap: | len(df) > cap -> len(df) >= cap": (
        "at len(df) == cap the draw takes every row (without replacement, then sorted): the same frame, and"
        " the generator is local to this corpus"
    ),
    'pepm_assets/core/prepare.py | parse_options=pcsv.ParseOptions(delimiter="\\t", newlines_in_values=True), | True -> False': (
        "the reader takes the whole file as one block on one thread (block_size > file size, use_threads"
        " False): newlines_in_values only tells Arrow's chunker where a block may end, and there is no"
        " second block (quoted newlines still parse; test_cli_and_io's round trips pass either way)"
    ),
    **dict.fromkeys(
        (
            "pepm_assets/core/prepare.py | column_types=types, strings_can_be_null=False, null_values=[], quoted_strings_can_be_null=False | False -> True",
            "pepm_assets/core/prepare.py | column_types=types, strings_can_be_null=False, null_values=[], quoted_strings_can_be_null=False | False -> True #2",
        ),
        "null_values=[]: no value is ever read as null, whatever the two flags say (they only decide whether"
        " the strings listed in null_values count as null, and the list is empty)",
    ),
    **dict.fromkeys(
        (
            "pepm_assets/core/prepare.py | read_options=pcsv.ReadOptions(use_threads=False, block_size=max(1 << 20, path.stat().st_size + 1)), | False -> True",
            "pepm_assets/core/prepare.py | read_options=pcsv.ReadOptions(use_threads=False, block_size=max(1 << 20, path.stat().st_size + 1)),"
            " | path.stat().st_size + 1 -> path.stat().st_size - 1",
        ),
        "threads and block size decide how Arrow cuts the work, not what it reads: with newlines_in_values=True"
        " its chunker follows the quotes, so a block never ends inside a quoted text (and below 1 MiB the block"
        " size is 1 MiB either way)",
    ),
    "pepm_assets/core/prepare.py | return periods.add_period_columns(pd.concat(frames, ignore_index=True), params.legislatures) | True -> False": (
        "the index of the loaded documents is never read: periods assigns arrays by position, and the next"
        " step, labels.assign_labels, is a merge, which returns a fresh RangeIndex"
    ),
    "pepm_assets/core/prepare.py | folder.mkdir(parents=True, exist_ok=True) | True -> False #2": (
        "exist_ok: _write_split removed repeats/ just before, so the folder never exists yet"
    ),
    "pepm_assets/core/prepare.py | rng = np.random.default_rng([params.seed, 7, i]) | 7 -> 8": (
        "a salt that keeps the per-corpus cap's draw apart from the other seeded streams; any other unused"
        " constant (1 and 2 are the balance draws') draws an equally random sample from the same seed"
    ),
}


# ---------------------------------------------------------------- mutants
@dataclass
class Mutant:
    module: str
    path: str  # relative to the repository root
    line: int
    col: int  # 1-based, in characters
    end_line: int
    operator: str
    original: str
    mutated: str
    key: str
    lines: list[int]  # lines whose execution by a test selects that test
    import_time: bool  # module- or class-level code (or a default argument): runs when the module is imported
    start: int = 0  # byte offsets of the edit
    end: int = 0
    status: str = "pending"
    tests: int = 0
    killed_by: str | None = None
    seconds: float = 0.0
    note: str = ""
    equivalent: str | None = None
    selected: list[str] = field(default_factory=list)  # the tests it runs, fastest first

    def source(self, original: bytes) -> bytes:
        return original[: self.start] + self.mutated.encode("utf-8") + original[self.end :]

    def public(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "operator": self.operator,
            "original": self.original,
            "mutated": self.mutated,
            "key": self.key,
            "import_time": self.import_time,
            "status": self.status,
            "tests": self.tests,
            "killed_by": self.killed_by,
            "seconds": round(self.seconds, 3),
            "note": self.note,
            "equivalent": self.equivalent,
        }


_CMP_SWAP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_CMP_TEXT = {
    ast.Lt: r"<(?!=)",
    ast.LtE: r"<=",
    ast.Gt: r">(?!=)",
    ast.GtE: r">=",
    ast.Eq: r"==",
    ast.NotEq: r"!=",
    ast.In: r"\bin\b",
    ast.NotIn: r"\bnot\s+in\b",
    ast.Is: r"\bis\b(?!\s+not\b)",
    ast.IsNot: r"\bis\s+not\b",
}
_CMP_NEW = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in"}
_CMP_NEW.update({ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"})
_BIN_SWAP = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.Mult,
    ast.Pow: ast.Mult,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.BitXor: ast.BitOr,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
}
_BIN_TEXT = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
}
_UNARY_TEXT = {ast.Not: "not", ast.Invert: "~", ast.USub: "-"}


def _compact(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class _Generator:
    """The mutants of one file. Each is a replacement of a byte span of the source, accepted only if
    the mutated source parses into exactly the intended tree (so precedence, parentheses and
    formatting can never turn a mutant into another program than the one described)."""

    def __init__(self, module: str, rel: str, text: str, operators: set[str]) -> None:
        self.module, self.rel, self.operators = module, rel, operators
        self.data = text.encode("utf-8")
        self.lines_text = text.splitlines()
        self.line_starts = [0]
        for i, byte in enumerate(self.data):
            if byte == 0x0A:
                self.line_starts.append(i + 1)
        self.tree = ast.parse(text)
        self.original_dump = ast.dump(self.tree)
        self.parent: dict[int, tuple[ast.AST, str, int | None]] = {}
        for parent in ast.walk(self.tree):
            for name, value in ast.iter_fields(parent):
                if isinstance(value, list):
                    for i, child in enumerate(value):
                        if isinstance(child, ast.AST):
                            self.parent[id(child)] = (parent, name, i)
                elif isinstance(value, ast.AST):
                    self.parent[id(value)] = (parent, name, None)
        self.mutants: list[Mutant] = []
        self.seen: set[bytes] = set()
        self.rejected = 0

    # ---- positions and text
    def _span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.line_starts[node.lineno - 1] + node.col_offset,  # type: ignore[attr-defined]
            self.line_starts[node.end_lineno - 1] + node.end_col_offset,  # type: ignore[attr-defined]
        )

    def _text(self, node: ast.AST) -> str:
        start, end = self._span(node)
        return self.data[start:end].decode("utf-8")

    def _statement(self, node: ast.AST) -> ast.stmt:
        while not isinstance(node, ast.stmt):
            node = self.parent[id(node)][0]
        return node

    def _selection_lines(self, node: ast.AST) -> list[int]:
        stmt = self._statement(node)
        if hasattr(stmt, "body"):  # compound statement: its header, not its body
            return sorted({stmt.lineno, *range(node.lineno, node.end_lineno + 1)})  # type: ignore[attr-defined]
        return list(range(stmt.lineno, stmt.end_lineno + 1))  # type: ignore[operator]

    # ---- tree edits (temporary: applied, dumped, undone)
    def _replace(self, node: ast.AST, new: ast.AST) -> Any:
        parent, name, index = self.parent[id(node)]
        if index is None:
            setattr(parent, name, new)
            return lambda: setattr(parent, name, node)
        getattr(parent, name)[index] = new

        def undo() -> None:
            getattr(parent, name)[index] = node

        return undo

    def _expected(self, apply: Any) -> str:
        undo = apply()
        try:
            return ast.dump(self.tree)
        finally:
            undo()

    def _set(self, obj: Any, attr: str, value: Any) -> Any:
        def apply() -> Any:
            old = getattr(obj, attr)
            setattr(obj, attr, value)
            return lambda: setattr(obj, attr, old)

        return apply

    def _set_item(self, lst: list[Any], index: int, value: Any) -> Any:
        def apply() -> Any:
            old = lst[index]
            lst[index] = value

            def undo() -> None:
                lst[index] = old

            return undo

        return apply

    def _add(self, node: ast.AST, operator: str, texts: list[str], apply: Any, import_time: bool, span_node: ast.AST | None = None) -> None:
        """One mutant: replace the source of `span_node` (default `node`) by the first of `texts` that
        parses into the tree `apply` gives."""
        if operator not in self.operators:
            return
        target = span_node or node
        expected = self._expected(apply)
        if expected == self.original_dump:
            return  # not a change of the program
        start, end = self._span(target)
        for text in [*texts, *(f"({t})" for t in texts)]:  # parenthesised where precedence needs it
            new = self.data[:start] + text.encode("utf-8") + self.data[end:]
            try:
                parsed = ast.dump(ast.parse(new))
            except SyntaxError:
                continue
            if parsed != expected:
                continue
            if new in self.seen:
                return
            self.seen.add(new)
            original = self.data[start:end].decode("utf-8")
            line_text = self.lines_text[target.lineno - 1].strip()  # type: ignore[attr-defined]
            key = f"{self.rel} | {line_text} | {_compact(original)} -> {_compact(text)}"
            self.mutants.append(
                Mutant(
                    module=self.module,
                    path=self.rel,
                    line=target.lineno,  # type: ignore[attr-defined]
                    col=len(self.data[self.line_starts[target.lineno - 1] : start].decode("utf-8")) + 1,  # type: ignore[attr-defined]
                    end_line=target.end_lineno,  # type: ignore[attr-defined]
                    operator=operator,
                    original=original,
                    mutated=text,
                    key=key,
                    lines=self._selection_lines(target),
                    import_time=import_time,
                    start=start,
                    end=end,
                )
            )
            return
        self.rejected += 1

    def _swap_in_gaps(self, node: ast.AST, operands: list[ast.AST], gaps: list[int], pattern: str, new: str) -> str | None:
        """The text of `node` with the operator token between operands[i] and operands[i+1] (for i in
        `gaps`) replaced: the edit is the operator only, the operands keep their spelling."""
        start, end = self._span(node)
        out = self.data[start:end]
        # work right to left so earlier offsets stay valid
        for i in sorted(gaps, reverse=True):
            a_end = self._span(operands[i])[1] - start
            b_start = self._span(operands[i + 1])[0] - start
            gap = out[a_end:b_start].decode("utf-8")
            match = re.search(pattern, gap)
            if match is None:
                return None
            gap = gap[: match.start()] + new + gap[match.end() :]
            out = out[:a_end] + gap.encode("utf-8") + out[b_start:]
        return out.decode("utf-8")

    # ---- the walk
    def run(self) -> list[Mutant]:
        self._body(self.tree.body, in_func=False)
        return self.mutants

    def _body(self, stmts: list[ast.stmt], in_func: bool) -> None:
        for i, stmt in enumerate(stmts):
            if i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
                continue  # docstring
            self._visit(stmt, in_func)

    def _visit(self, node: ast.AST, in_func: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal, ast.Assert, ast.JoinedStr, ast.arg)):
            return  # imports, f-strings (messages), annotations
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]:
                self._visit(default, in_func)  # evaluated where the function is defined
            if isinstance(node, ast.Lambda):
                self._visit(node.body, True)
            else:
                self._body(node.body, True)  # decorators, annotations: not mutated
            return
        if isinstance(node, ast.ClassDef):
            self._body(node.body, in_func)
            return
        if isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self._visit(node.value, in_func)
            return
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return
        if isinstance(node, ast.If) and _is_guard(node.test):
            self._body(node.orelse, in_func)
            return
        self._mutate(node, in_func)
        if isinstance(node, ast.comprehension):
            for cond in node.ifs:
                self._negate(cond, in_func)
        for child in ast.iter_child_nodes(node):
            self._visit(child, in_func)

    def _negate(self, test: ast.expr, in_func: bool) -> None:
        if isinstance(test, (ast.Compare, ast.BoolOp)) or (isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)):
            return
        text = self._text(test)
        self._add(test, "cond", [f"not {text}", f"not ({text})"], lambda: self._replace(test, ast.UnaryOp(ast.Not(), test)), not in_func)

    def _mutate(self, node: ast.AST, in_func: bool) -> None:
        imp = not in_func
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for i, op in enumerate(node.ops):
                new_op = _CMP_SWAP[type(op)]
                text = self._swap_in_gaps(node, operands, [i], _CMP_TEXT[type(op)], _CMP_NEW[new_op])
                fallback = self._unparsed(self._set_item(node.ops, i, new_op()), node)
                self._add(node, "cmp", [t for t in (text, fallback) if t], self._set_item(node.ops, i, new_op()), imp)
        elif isinstance(node, ast.BinOp) and type(node.op) in _BIN_SWAP:
            new_op = _BIN_SWAP[type(node.op)]
            pattern = re.escape(_BIN_TEXT[type(node.op)]) + r"(?![*/=])"
            text = self._swap_in_gaps(node, [node.left, node.right], [0], pattern, _BIN_TEXT[new_op])
            fallback = self._unparsed(self._set(node, "op", new_op()), node)
            self._add(node, "arith", [t for t in (text, fallback) if t], self._set(node, "op", new_op()), imp)
        elif isinstance(node, ast.AugAssign) and type(node.op) in _BIN_SWAP:
            new_op = _BIN_SWAP[type(node.op)]
            text = self._swap_in_gaps(
                node, [node.target, node.value], [0], re.escape(_BIN_TEXT[type(node.op)] + "="), _BIN_TEXT[new_op] + "="
            )
            self._add(node, "augassign", [text] if text else [], self._set(node, "op", new_op()), imp)
        elif isinstance(node, ast.BoolOp):
            new_op = ast.Or if isinstance(node.op, ast.And) else ast.And
            pattern = r"\band\b" if isinstance(node.op, ast.And) else r"\bor\b"
            text = self._swap_in_gaps(node, node.values, list(range(len(node.values) - 1)), pattern, "or" if new_op is ast.Or else "and")
            fallback = self._unparsed(self._set(node, "op", new_op()), node)
            self._add(node, "bool", [t for t in (text, fallback) if t], self._set(node, "op", new_op()), imp)
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_TEXT:
            if isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
                return  # -1: the constant operator changes it
            text = self._text(node.operand)
            self._add(node, "unary", [text, f"({text})"], lambda: self._replace(node, node.operand), imp)
        elif isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool):
                new: Any = not value
            elif isinstance(value, int):
                new = 1 if value == 0 else 0 if value == 1 else value + 1
            elif isinstance(value, float):
                new = value + 1.0
            elif isinstance(value, str) and "str" in self.operators:
                new = f"XX{value}XX"
            else:
                return
            self._add(node, "str" if isinstance(value, str) else "const", [repr(new)], self._set(node, "value", new), imp)
        elif isinstance(node, ast.Return) and node.value is not None:
            if isinstance(node.value, ast.Constant) and node.value.value is None:
                return
            value = node.value
            self._add(value, "return", ["None"], self._set(node, "value", ast.Constant(None)), imp)
        elif isinstance(node, (ast.If, ast.While, ast.IfExp)):
            self._negate(node.test, in_func)
        elif isinstance(node, ast.Slice):
            self._slice(node, imp)
        if isinstance(node, ast.stmt) and _removable(node):
            self._add(node, "remove", ["pass"], lambda: self._replace(node, ast.Pass()), imp)

    def _slice(self, node: ast.Slice, imp: bool) -> None:
        parts = {name: getattr(node, name) for name in ("lower", "upper", "step")}
        texts = {name: self._text(part) if part is not None else "" for name, part in parts.items()}
        for name in ("lower", "upper"):
            bound = parts[name]
            if bound is None:
                continue
            kept = {**texts, name: ""}
            text = f"{kept['lower']}:{kept['upper']}" + (f":{kept['step']}" if parts["step"] is not None else "")
            self._add(node, "slice", [text], self._set(node, name, None), imp)
            if not isinstance(bound, ast.Constant):
                plus = ast.BinOp(bound, ast.Add(), ast.Constant(1))
                self._add(bound, "slice", [f"{texts[name]} + 1", f"({texts[name]}) + 1"], self._set(node, name, plus), imp)

    def _unparsed(self, apply: Any, node: ast.AST) -> str | None:
        undo = apply()
        try:
            return ast.unparse(node)
        except Exception:
            return None
        finally:
            undo()


def _is_guard(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` and `if __name__ == "__main__":`: not program logic."""
    if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
        return True
    return isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"


def _removable(stmt: ast.stmt) -> bool:
    if isinstance(stmt, (ast.Continue, ast.Break, ast.Raise, ast.Delete)):
        return True
    if isinstance(stmt, ast.Expr):
        return isinstance(stmt.value, (ast.Call, ast.Await))
    if isinstance(stmt, ast.Assign):
        flat = [e for t in stmt.targets for e in (t.elts if isinstance(t, (ast.Tuple, ast.List)) else [t])]
        return any(isinstance(t, (ast.Subscript, ast.Attribute)) for t in flat)
    return False


def module_files(root: Path, module: str) -> list[str]:
    files: list[str] = []
    for pattern in MODULES[module]:
        files += sorted(str(Path(p).relative_to(root)) for p in glob.glob(str(root / pattern)))
    return files


def _generate_all(root: Path, modules: list[str], operators: set[str], args: argparse.Namespace) -> dict[str, list[Mutant]]:
    generated: dict[str, list[Mutant]] = {}
    for m in modules:
        mutants, rejected = generate(root, m, operators)
        total = len(mutants)
        if args.sample and args.sample < total:
            rng = random.Random(f"{args.seed}:{m}")
            mutants = sorted(rng.sample(mutants, args.sample), key=lambda x: (x.path, x.start, x.operator))
        generated[m] = mutants
        sampled = f", sample of {len(mutants)} (seed {args.seed})" if len(mutants) < total else ""
        log(f"{m}: {total} mutants{sampled}; {rejected} rejected")
    return generated


def generate(root: Path, module: str, operators: set[str]) -> tuple[list[Mutant], int]:
    mutants: list[Mutant] = []
    rejected = 0
    for rel in module_files(root, module):
        gen = _Generator(module, rel, (root / rel).read_text(encoding="utf-8"), operators)
        mutants += gen.run()
        rejected += gen.rejected
    mutants.sort(key=lambda m: (m.path, m.start, m.operator, m.mutated))
    seen: dict[str, int] = defaultdict(int)
    for m in mutants:  # the same edit twice on one line (two `1`s): the second key gets " #2"
        seen[m.key] += 1
        if seen[m.key] > 1:
            m.key = f"{m.key} #{seen[m.key]}"
        m.equivalent = EQUIVALENT.get(m.key)
    return mutants, rejected


# ---------------------------------------------------------------- the copies
def project_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "-c", "-o", "--exclude-standard"], cwd=root, capture_output=True, check=True).stdout
    files = sorted({f for f in out.decode("utf-8").split("\0") if f and (root / f).is_file()})
    compiled = [str(p.relative_to(root)) for p in (root / "pepm_assets").rglob("*") if p.suffix in (".so", ".pyd") and p.is_file()]
    return files + sorted(compiled)


def make_copy(root: Path, target: Path, source: str) -> dict[str, Any]:
    """`worktree`: the files as they are (tracked and untracked, not ignored); `head`: the last commit's
    files. Both with the compiled modules, which git ignores. Returns what was copied (commit, source)."""
    target.mkdir(parents=True, exist_ok=True)
    commit = _git("rev-parse", "HEAD")
    snapshot = {
        "commit": commit[:7],
        "source": source,
        "uncommitted_changes": source == "worktree" and bool(_git("status", "--porcelain")),
        "copied": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if source == "head":
        archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=root, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
        files = [str(p.relative_to(root)) for p in (root / "pepm_assets").rglob("*") if p.suffix in (".so", ".pyd") and p.is_file()]
    else:
        files = project_files(root)
    for rel in files:
        dst = target / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dst)
    # hash-checked bytecode: a mutant written within the same second, at the same size as the
    # original, can never be run from a stale .pyc (timestamp-checked .pyc files could be)
    for folder in ("pepm_assets", "pepm_assets_tests"):
        compileall.compile_dir(str(target / folder), quiet=2, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    (target / ".dagster").mkdir(exist_ok=True)
    return snapshot


def copy_env(copy_root: Path, *, write_bytecode: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy_root), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    env["PEPM_ROOT"] = str(copy_root)
    env["DAGSTER_HOME"] = str(copy_root / ".dagster")
    env.setdefault("MPLBACKEND", "Agg")
    dvc = REPO / ".venv-dvc" / "bin" / "dvc"
    if "PEPM_DVC" not in env and dvc.is_file():
        env["PEPM_DVC"] = str(dvc)  # conftest looks for it next to the repository, which the copy is not
    if write_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _hypothesis_args() -> list[str]:
    """The property-based tests draw the same examples in every run (mapping, clean check, each
    mutant), so a verdict does not depend on the luck of the draw."""
    return ["--hypothesis-seed", "0"] if importlib.util.find_spec("hypothesis") else []


def _beside(root: Path, what: str) -> Path:
    """Files of the runs in a copy go next to it, not into it: a test may compare paths with the
    project root (pytest's temporary folders inside it would be relative to it)."""
    return root.parent / f"{root.name}-{what}"


def _internal_argv(mode: str, *args: str) -> list[str]:
    return [sys.executable, str(SCRIPT), mode, *args]


def _drop_script_dir() -> None:
    if sys.path and Path(sys.path[0] or ".").resolve() == SCRIPT.parent:
        sys.path.pop(0)


def _check_import_root(root: Path) -> None:
    spec = importlib.util.find_spec("pepm_assets")
    origin = Path(spec.origin).resolve() if spec and spec.origin else None
    if origin is None or root.resolve() not in origin.parents:
        raise SystemExit(f"pepm_assets would be imported from {origin}, not from the copy {root}")


# ---------------------------------------------------------------- mapping (internal mode _map)
class _SettraceTracer:
    """Lines executed in `files`, per context (test node id); the dependency-free fallback."""

    def __init__(self, files: list[str]) -> None:
        self.files = set(files)
        self.context = ""
        self.hits: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))

    def _global(self, frame: Any, event: str, arg: Any) -> Any:
        return self._local if frame.f_code.co_filename in self.files else None

    def _local(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            self.hits[frame.f_code.co_filename][frame.f_lineno].add(self.context)
        return self._local

    def start(self) -> None:
        threading.settrace(self._global)
        sys.settrace(self._global)

    def switch(self, context: str) -> None:
        self.context = context

    def stop(self) -> None:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]

    def result(self) -> dict[str, dict[int, list[str]]]:
        return {f: {line: sorted(c) for line, c in lines.items()} for f, lines in self.hits.items()}


class _CoverageTracer:
    def __init__(self, files: list[str]) -> None:
        import coverage

        self.cov = coverage.Coverage(data_file=None, include=files, config_file=False, branch=False)

    def start(self) -> None:
        self.cov.start()

    def switch(self, context: str) -> None:
        self.cov.switch_context(context)

    def stop(self) -> None:
        self.cov.stop()

    def result(self) -> dict[str, dict[int, list[str]]]:
        data = self.cov.get_data()
        return {f: {int(line): sorted(c) for line, c in data.contexts_by_lineno(f).items()} for f in data.measured_files()}


def _map_main(argv: list[str]) -> int:
    _drop_script_dir()
    parser = argparse.ArgumentParser(prog="mutation.py _map")
    parser.add_argument("--out", required=True)
    parser.add_argument("--targets", nargs="+", required=True)
    parser.add_argument("--tracer", choices=["auto", "coverage", "settrace"], default="auto")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args(argv)
    root = Path.cwd()
    _check_import_root(root)
    files = [str((root / t).resolve()) for t in args.targets]
    tracer: Any
    if args.tracer == "settrace":
        tracer = _SettraceTracer(files)
    else:
        try:
            tracer = _CoverageTracer(files)
        except ImportError:
            if args.tracer == "coverage":
                raise
            tracer = _SettraceTracer(files)
    import pytest

    tests: dict[str, dict[str, Any]] = {}

    class MapPlugin:
        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Any:
            tracer.switch(item.nodeid)
            started = time.perf_counter()
            try:
                return (yield)
            finally:
                tracer.switch("")
                tests.setdefault(item.nodeid, {"outcome": "passed"})["duration"] = time.perf_counter() - started

        def pytest_runtest_logreport(self, report: Any) -> None:
            entry = tests.setdefault(report.nodeid, {"outcome": "passed"})
            if report.failed:
                entry["outcome"] = "failed"
            elif report.skipped and entry["outcome"] != "failed":
                entry["outcome"] = "skipped"

    tracer.start()
    try:
        rc = pytest.main(
            [*args.pytest_args, "-p", "no:cacheprovider", "-q", "--basetemp", str(_beside(root, "tmp")), *_hypothesis_args()],
            plugins=[MapPlugin()],
        )
    finally:
        tracer.stop()
    modules = sorted(
        {
            name.split(".")[0]
            for name, mod in list(sys.modules.items())
            if ("site-packages" in str(getattr(mod, "__file__", "") or "") or "dist-packages" in str(getattr(mod, "__file__", "") or ""))
        }
    )
    hits = {str(Path(f).resolve().relative_to(root.resolve())): lines for f, lines in tracer.result().items()}
    Path(args.out).write_text(
        json.dumps({"rc": int(rc), "tracer": type(tracer).__name__, "tests": tests, "hits": hits, "modules": modules}), encoding="utf-8"
    )
    return 0


# ---------------------------------------------------------------- the worker (internal mode _worker)
PRELOAD_SKIP = {"coverage", "mutmut", "torch", "transformers", "thinc", "spacy", "tensorflow", "jax", "IPython"}


def _worker_main(argv: list[str]) -> int:
    """Imports the third-party libraries once, then per request: writes the mutant into this copy,
    forks a child that runs pytest on the selected tests (so the child imports pepm itself, mutated),
    waits for it with a timeout, restores the file, replies. Requests and replies: JSON lines."""
    _drop_script_dir()
    parser = argparse.ArgumentParser(prog="mutation.py _worker")
    parser.add_argument("--preload", default="")
    args = parser.parse_args(argv)
    root = Path.cwd()
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to the log, not into the protocol
    preload = json.loads(Path(args.preload).read_text(encoding="utf-8")) if args.preload else []
    for name in ["pytest", *preload]:
        if name in PRELOAD_SKIP or name.split(".")[0] in PROJECT_PACKAGES:
            continue
        try:
            with contextlib.redirect_stdout(sys.stderr):
                importlib.import_module(name)
        except BaseException as exc:
            print(f"preload {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    for name in [n for n in sys.modules if n.split(".")[0] in PROJECT_PACKAGES]:
        del sys.modules[name]  # the children must import pepm from the (mutated) files
    _check_import_root(root)
    signal.signal(signal.SIGTERM, _worker_sigterm)
    protocol.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = _serve(request, root, protocol.fileno())
        except Exception as exc:
            reply = {"status": "error", "note": f"worker: {type(exc).__name__}: {exc}"}
        protocol.write(json.dumps(reply) + "\n")
    return 0


_RUNNING: dict[str, int] = {}
_STOP = threading.Event()  # set on Ctrl-C / SIGTERM: no further mutant starts, no worker restarts


def _worker_sigterm(signum: int, frame: Any) -> None:
    pid = _RUNNING.get("pid")
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    raise SystemExit(143)  # _serve's finally puts the original file back


def _serve(request: dict[str, Any], root: Path, protocol_fd: int) -> dict[str, Any]:
    path = root / request["path"] if request.get("path") else None
    original = path.read_bytes() if path else None
    result_file = _beside(root, "result.json")
    result_file.unlink(missing_ok=True)
    if path is not None:
        path.write_bytes(request["source"].encode("utf-8"))
    shutil.rmtree(root / ".hypothesis", ignore_errors=True)  # each run as from a fresh clone: no replayed examples
    started = time.monotonic()
    try:
        pid = os.fork()
        if pid == 0:  # the child: never returns
            _child(request, root, result_file, protocol_fd)
        _RUNNING["pid"] = pid
        deadline = started + request["timeout"]
        timed_out, status = False, 0
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # what the tests started and left behind
        _RUNNING.pop("pid", None)
    finally:
        if path is not None and original is not None:
            path.write_bytes(original)
    seconds = time.monotonic() - started
    result = json.loads(result_file.read_text(encoding="utf-8")) if result_file.is_file() else {}
    failed = result.get("failed", [])
    if timed_out:
        return {"status": "timeout", "seconds": seconds, "failed": failed}
    if os.WIFSIGNALED(status):
        return {"status": "error", "seconds": seconds, "note": f"signal {os.WTERMSIG(status)}", "failed": failed}
    rc = os.WEXITSTATUS(status)
    verdict = {0: "survived", 1: "killed"}.get(rc, "error")
    note = "" if rc in (0, 1) else f"pytest exit code {rc}" + (f": {result['error']}" if result.get("error") else "")
    return {"status": verdict, "seconds": seconds, "rc": rc, "failed": failed, "ran": result.get("ran", 0), "note": note}


def _child(request: dict[str, Any], root: Path, result_file: Path, protocol_fd: int) -> None:
    code = 99
    try:
        os.setpgid(0, 0)
        os.close(protocol_fd)
        log = os.open(_beside(root, "last.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.chdir(root)
        import pytest

        state: dict[str, Any] = {"failed": [], "ran": 0}

        class RunPlugin:
            def pytest_runtest_logreport(self, report: Any) -> None:
                if report.when == "call":
                    state["ran"] += 1
                if report.failed and report.nodeid not in state["failed"]:
                    state["failed"].append(report.nodeid)

            def pytest_collectreport(self, report: Any) -> None:
                if report.failed:
                    state["error"] = f"collection of {report.nodeid} failed"

        args = [*request["tests"], "-p", "no:cacheprovider", "-q", "--no-header", "--tb=short", "--basetemp", str(_beside(root, "tmp"))]
        if request.get("exitfirst", True):
            args.append("-x")
        args += _hypothesis_args()
        code = int(pytest.main(args, plugins=[RunPlugin()]))
        result_file.write_text(json.dumps(state), encoding="utf-8")
    except BaseException as exc:
        with contextlib.suppress(Exception):
            result_file.write_text(json.dumps({"failed": [], "error": f"{type(exc).__name__}: {exc}"}), encoding="utf-8")
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


class Worker:
    def __init__(self, index: int, root: Path, preload_file: Path, log: Path) -> None:
        self.index, self.root, self.preload_file, self.log = index, root, preload_file, log
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        log = open(self.log, "a", encoding="utf-8")  # noqa: SIM115 (closed with the process)
        self.proc = subprocess.Popen(
            _internal_argv("_worker", "--preload", str(self.preload_file)),
            cwd=self.root,
            env=copy_env(self.root, write_bytecode=False),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        log.close()
        ready = self.proc.stdout.readline() if self.proc.stdout else ""
        if not ready:
            raise SystemExit(f"worker {self.index} did not start; see {self.log}")

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        if _STOP.is_set():
            return {"status": "pending", "note": "interrupted", "seconds": 0.0}
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            reply = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            reply = ""
        if not reply:
            self.stop()
            return {"status": "error", "note": f"worker {self.index} died (see {self.log})", "seconds": 0.0}
        return json.loads(reply)

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            if self.proc.stdin:
                self.proc.stdin.close()
        for how in (None, self.proc.terminate, self.proc.kill):  # idle: it ends at end of input; busy: SIGTERM stops its run
            if how is not None:
                how()
            try:
                self.proc.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        self.proc = None


# ---------------------------------------------------------------- orchestration
def _plain_files(root: Path) -> list[Path]:
    """The files of a copy, without bytecode and what the runs leave there."""
    skip = ("__pycache__", ".dagster", ".hypothesis")
    return sorted(
        p for p in root.rglob("*") if p.is_file() and not any(part in skip for part in p.relative_to(root).parts) and p.suffix != ".pyc"
    )


def _sync_from(source: Path, target: Path) -> None:
    for path in _plain_files(source):
        dst = target / path.relative_to(source)
        if not dst.is_file() or dst.read_bytes() != path.read_bytes():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dst)


def _cache_key(root: Path, tests: list[str], targets: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([sys.version, tests, targets]).encode())
    for path in _plain_files(root):
        rel = str(path.relative_to(root))
        if rel.startswith(("pepm_assets/", "pepm_assets_tests/", "configs/")) or rel in ("pyproject.toml", "setup.py", "dagster.yaml"):
            digest.update(rel.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:20]


def _test_files(root: Path, tests: list[str]) -> list[str]:
    out: list[str] = []
    for item in tests:
        path = root / item
        if path.is_dir():
            out += sorted(str(p.relative_to(root)) for p in path.rglob("test_*.py"))
        else:
            out.append(item)
    return out


def build_map(args: argparse.Namespace, copies: list[Path], targets: list[str], workdir: Path) -> dict[str, Any]:
    test_files = _test_files(copies[0], args.tests)
    cache_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pepm-mutation"
    cache = cache_dir / f"map-{_cache_key(copies[0], test_files, targets)}.json"
    if cache.is_file() and not args.remap:
        log(f"mapping: reusing {cache}")
        return json.loads(cache.read_text(encoding="utf-8"))
    shards: list[list[str]] = [[] for _ in copies]
    weights = [0] * len(copies)
    sizes = {rel: (copies[0] / rel).stat().st_size if (copies[0] / rel).is_file() else 1 for rel in test_files}
    for rel in sorted(test_files, key=lambda f: -sizes[f]):  # biggest first, each to the lightest shard
        i = weights.index(min(weights))
        shards[i].append(rel)
        weights[i] += sizes[rel]
    started = time.monotonic()
    log(f"mapping: running {len(test_files)} test files in {len(copies)} shards under a line tracer (once; cached in {cache_dir})")
    procs = []
    for i, (copy, shard) in enumerate(zip(copies, shards)):
        if not shard:
            continue
        out = workdir / f"map-{i}.json"
        out.unlink(missing_ok=True)
        with open(workdir / f"map-{i}.log", "w", encoding="utf-8") as fh:
            cmd = _internal_argv("_map", "--out", str(out), "--tracer", args.tracer, "--targets", *targets, "--", *shard)
            env = copy_env(copy, write_bytecode=True)
            procs.append((i, out, subprocess.Popen(cmd, cwd=copy, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)))
    try:
        for _, _, proc in procs:
            proc.wait()
    finally:
        for _, _, proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    merged: dict[str, Any] = {"tests": {}, "hits": defaultdict(dict), "modules": set(), "tracer": ""}
    for i, out, proc in procs:
        if not out.is_file():
            raise SystemExit(f"mapping shard {i} failed (exit {proc.returncode}); see {workdir / f'map-{i}.log'}")
        part = json.loads(out.read_text(encoding="utf-8"))
        if part["rc"] not in (0, 1):
            raise SystemExit(f"mapping shard {i}: pytest exit code {part['rc']}; see {workdir / f'map-{i}.log'}")
        merged["tests"].update(part["tests"])
        merged["tracer"] = part["tracer"]
        merged["modules"].update(part["modules"])
        for rel, lines in part["hits"].items():
            for line, contexts in lines.items():
                merged["hits"][rel][line] = sorted(set(merged["hits"][rel].get(line, [])) | set(contexts))
    merged["modules"] = sorted(merged["modules"])
    merged["seconds"] = round(time.monotonic() - started, 1)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(merged), encoding="utf-8")
    outcomes = defaultdict(int)
    for t in merged["tests"].values():
        outcomes[t["outcome"]] += 1
    log(f"mapping: done in {merged['seconds']:.0f}s ({merged['tracer']}): {dict(outcomes)}")
    return merged


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _display(original: str, mutated: str, width: int = 110) -> str:
    a, b = _compact(original), _compact(mutated)
    if len(a) > width or len(b) > width:
        prefix = 0
        while prefix < min(len(a), len(b)) and a[prefix] == b[prefix]:
            prefix += 1
        suffix = 0
        while suffix < min(len(a), len(b)) - prefix and a[-1 - suffix] == b[-1 - suffix]:
            suffix += 1
        cut_l = max(0, prefix - 30)
        keep_r = max(0, suffix - 30)
        a = ("…" if cut_l else "") + a[cut_l : len(a) - keep_r] + ("…" if keep_r else "")
        b = ("…" if cut_l else "") + b[cut_l : len(b) - keep_r] + ("…" if keep_r else "")
        a, b = a[:width], b[:width]
    return f"{a}  ->  {b}"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def run(args: argparse.Namespace) -> int:
    operators = set(args.operators or DEFAULT_OPERATORS) | ({"str"} if args.strings else set())
    unknown = operators - set(OPERATORS)
    if unknown:
        raise SystemExit(f"unknown operators {sorted(unknown)} (known: {sorted(OPERATORS)})")
    modules = [m for chunk in (args.module or list(MODULES)) for m in chunk.split(",") if m]
    for m in modules:
        if m not in MODULES:
            raise SystemExit(f"unknown module {m!r} (known: {', '.join(MODULES)})")
    if args.list:
        for m, mutants in _generate_all(REPO, modules, operators, args).items():
            for mut in mutants:
                print(f"{m:8} {mut.path}:{mut.line}:{mut.col:<3} {mut.operator:9} {_display(mut.original, mut.mutated)}")
        return 0

    started_all = time.monotonic()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="pepm-mutation-"))
    workdir.mkdir(parents=True, exist_ok=True)
    workers: list[Worker] = []
    try:
        copies = []
        for i in range(args.jobs):
            copy = workdir / f"w{i}"
            if i == 0 and not (copy / "pyproject.toml").is_file():
                (workdir / "snapshot.json").write_text(json.dumps(make_copy(REPO, copy, args.source)), encoding="utf-8")
            elif i > 0:  # the same snapshot as the first copy, even if the checkout changed since
                if not (copy / "pyproject.toml").is_file():
                    ignore = shutil.ignore_patterns(".dagster", ".hypothesis")
                    shutil.copytree(copies[0], copy, symlinks=True, ignore=ignore, dirs_exist_ok=True)
                    (copy / ".dagster").mkdir(exist_ok=True)
                _sync_from(copies[0], copy)
            copies.append(copy)
        snapshot = copies[0]  # mutants, mapping and runs all come from this one state of the tree
        what = json.loads((workdir / "snapshot.json").read_text(encoding="utf-8")) if (workdir / "snapshot.json").is_file() else {}
        log(f"measuring {what.get('source', '?')} at commit {what.get('commit', '?')} (copied {what.get('copied', '?')})")
        all_targets = [f for m in MODULES for f in module_files(snapshot, m)]
        changed = [f for f in all_targets if not (REPO / f).is_file() or (REPO / f).read_bytes() != (snapshot / f).read_bytes()]
        if changed:
            log(f"note: the copies in {workdir} differ from the checkout in {changed}: the copies are measured")
        log(f"copies: {len(copies)} in {workdir}")
        generated = _generate_all(snapshot, modules, operators, args)
        mapping = build_map(args, copies, all_targets, workdir)
        preload_file = workdir / "preload.json"
        preload_file.write_text(json.dumps([] if args.no_preload else mapping["modules"]), encoding="utf-8")
        workers = [Worker(i, c, preload_file, workdir / f"worker-{i}.log") for i, c in enumerate(copies)]
        threads = [threading.Thread(target=w.start) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        tests_info: dict[str, dict[str, Any]] = mapping["tests"]
        excluded: dict[str, str] = {}
        for nodeid, info in tests_info.items():
            if info["outcome"] != "passed":
                excluded[nodeid] = info["outcome"]
            elif args.max_test_seconds and info.get("duration", 0) > args.max_test_seconds:
                excluded[nodeid] = f"slow ({info['duration']:.0f}s > --max-test-seconds {args.max_test_seconds:g})"
        hits: dict[str, dict[str, list[str]]] = mapping["hits"]

        summaries: dict[str, dict[str, Any]] = {}
        for m in modules:
            summaries[m] = run_module(args, snapshot, m, generated[m], hits, tests_info, excluded, workers)
        wall = time.monotonic() - started_all
    except KeyboardInterrupt:
        _STOP.set()
        log("interrupted")
        return 130
    finally:
        for w in workers:
            w.stop()
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    report = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": what.get("commit", "?"),
        "source": what.get("source", args.source),
        "uncommitted_changes": what.get("uncommitted_changes", False),
        "python": sys.version.split()[0],
        "jobs": args.jobs,
        "operators": sorted(operators),
        "max_test_seconds": args.max_test_seconds,
        "timeout_factor": args.timeout_factor,
        "mapping": {"tracer": mapping.get("tracer"), "seconds": mapping.get("seconds"), "tests": len(tests_info)},
        "excluded_tests": excluded,
        "seconds": round(wall, 1),
        "modules": summaries,
        "mutants": [mut.public() for m in modules for mut in generated[m]],
    }
    print_report(report, generated, modules, show_keys=args.show_keys)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.markdown:
        Path(args.markdown).write_text(markdown(report, generated, modules), encoding="utf-8")
    return 0


def run_module(
    args: argparse.Namespace,
    root: Path,
    module: str,
    mutants: list[Mutant],
    hits: dict[str, dict[str, list[str]]],
    tests_info: dict[str, dict[str, Any]],
    excluded: dict[str, str],
    workers: list[Worker],
) -> dict[str, Any]:
    started = time.monotonic()
    files = module_files(root, module)

    def usable(tests: set[str]) -> list[str]:
        return sorted((t for t in tests if t and t not in excluded), key=lambda t: (tests_info[t].get("duration", 0), t))

    module_tests: set[str] = set()
    for rel in files:
        for contexts in hits.get(rel, {}).values():
            module_tests.update(c for c in contexts if c)

    # the tests of the module, unmutated, in a worker: any that fails there is left out
    clean_tests = usable(module_tests)
    overhead = 10.0
    clean_seconds = 0.0
    if clean_tests and not args.no_clean_check:
        budget = sum(tests_info[t].get("duration", 0) for t in clean_tests)
        reply = workers[0].run({"path": None, "tests": clean_tests, "timeout": args.timeout_factor * budget + 600, "exitfirst": False})
        clean_seconds = reply.get("seconds", 0.0)
        for nodeid in reply.get("failed", []):
            excluded[nodeid] = "fails unmutated in the mutation runner"
        if reply.get("status") not in ("survived", "killed"):
            raise SystemExit(f"{module}: the unmutated tests did not run cleanly: {reply}")
        overhead = max(overhead, clean_seconds - budget)
        log(f"{module}: clean run of {len(clean_tests)} tests in {clean_seconds:.0f}s ({len(reply.get('failed', []))} failing, left out)")
        clean_tests = usable(module_tests)

    jobs: queue.Queue[Mutant] = queue.Queue()
    originals = {rel: (root / rel).read_bytes() for rel in files}
    for mut in mutants:
        selected: set[str] = set()
        for line in mut.lines:
            selected.update(hits.get(mut.path, {}).get(str(line), []))
        if mut.import_time:
            selected |= module_tests
        tests = usable(selected)
        mut.tests, mut.selected = len(tests), tests
        if not tests:
            mut.status = "no-tests"
            covered_by = {t for t in selected if t}
            mut.note = f"executed only by left-out tests ({len(covered_by)})" if covered_by else "no test executes this line"
            continue
        jobs.put(mut)
    done = [0]
    total = jobs.qsize()
    lock = threading.Lock()

    def work(worker: Worker) -> None:
        while not _STOP.is_set():
            try:
                mut = jobs.get_nowait()
            except queue.Empty:
                return
            tests = mut.selected
            budget = sum(tests_info[t].get("duration", 0) for t in tests)
            request = {
                "path": mut.path,
                "source": mut.source(originals[mut.path]).decode("utf-8"),
                "tests": tests,
                "timeout": args.timeout_factor * (budget + overhead) + 10,
            }
            reply = worker.run(request)
            if _STOP.is_set():
                return
            mut.status = reply.get("status", "error")
            mut.seconds = reply.get("seconds", 0.0)
            mut.note = reply.get("note", "")
            if reply.get("failed"):
                mut.killed_by = reply["failed"][0]
            with lock:
                done[0] += 1
                log(
                    f"[{module} {done[0]}/{total}] {mut.status:9} {mut.path}:{mut.line} {mut.operator:9} {_display(mut.original, mut.mutated, 70)}"
                )

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)

    for mut in mutants:
        if mut.equivalent and mut.status in ("survived", "no-tests"):
            mut.status = "equivalent"
        elif mut.equivalent:
            mut.note = (mut.note + "; " if mut.note else "") + "listed as equivalent but caught: remove it from EQUIVALENT"
    counts = defaultdict(int)
    for mut in mutants:
        counts[mut.status] += 1
    caught = counts["killed"] + counts["timeout"] + counts["error"]
    scored = len(mutants) - counts["equivalent"]
    seconds = time.monotonic() - started
    return {
        "files": files,
        "mutants": len(mutants),
        "killed": counts["killed"],
        "timeout": counts["timeout"],
        "error": counts["error"],
        "survived": counts["survived"],
        "no_tests": counts["no-tests"],
        "equivalent": counts["equivalent"],
        "score": round(100.0 * caught / scored, 1) if scored else None,
        "tests_of_module": len(clean_tests),
        "clean_run_seconds": round(clean_seconds, 1),
        "seconds": round(seconds, 1),
        "mutants_per_second": round(len(mutants) / seconds, 3) if seconds else None,
    }


def print_report(report: dict[str, Any], generated: dict[str, list[Mutant]], modules: list[str], show_keys: bool = False) -> None:
    dirty = " + uncommitted changes" if report["uncommitted_changes"] else ""
    print(f"\npepm mutation testing: {report['date']}, commit {report['commit']}{dirty}, {report['jobs']} job(s), {report['seconds']:.0f}s")
    header = f"{'module':9} {'mutants':>7} {'killed':>6} {'timeout':>7} {'error':>5} {'survived':>8} {'no-tests':>8} {'equiv':>5} {'score':>7} {'time':>7} {'mut/s':>6}"
    print(header)
    for m in modules:
        s = report["modules"][m]
        score = f"{s['score']:.1f}%" if s["score"] is not None else "-"
        row = f"{m:9} {s['mutants']:>7} {s['killed']:>6} {s['timeout']:>7} {s['error']:>5} {s['survived']:>8} {s['no_tests']:>8}"
        print(f"{row} {s['equivalent']:>5} {score:>7} {s['seconds']:>6.0f}s {s['mutants_per_second'] or 0:>6.2f}")
    for m in modules:
        left = [x for x in generated[m] if x.status in ("survived", "no-tests", "equivalent")]
        if not left:
            continue
        print(f"\n== {m}: survivors ({len(left)})")
        for x in left:
            tag = {"no-tests": f"  [no test: {x.note}]", "equivalent": f"  [equivalent: {x.equivalent}]"}.get(
                x.status, f"  [{x.tests} tests ran]"
            )
            print(f"  {x.path}:{x.line:<4} {x.operator:9} {_display(x.original, x.mutated)}{tag}")
            if show_keys:
                print(f"      key: {x.key}")
    if report["excluded_tests"]:
        reasons = defaultdict(int)
        for why in report["excluded_tests"].values():
            reasons[why.split(" (")[0]] += 1
        print(f"\ntests left out of the selection: {dict(reasons)} (the JSON lists them)")


def markdown(report: dict[str, Any], generated: dict[str, list[Mutant]], modules: list[str]) -> str:
    out = [
        f"Measured {report['date']}, commit `{report['commit']}`{' (+ uncommitted changes)' if report['uncommitted_changes'] else ''}, "
        f"{report['jobs']} job(s), {report['seconds']:.0f} s in all.",
        "",
        "| module | mutants | killed | timeout | error | survived | no tests | equivalent | score | time | mutants/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in modules:
        s = report["modules"][m]
        score = f"{s['score']:.1f} %" if s["score"] is not None else "-"
        out.append(
            f"| {m} | {s['mutants']} | {s['killed']} | {s['timeout']} | {s['error']} | {s['survived']} | {s['no_tests']} "
            f"| {s['equivalent']} | {score} | {s['seconds']:.0f} s | {s['mutants_per_second'] or 0:.2f} |"
        )
    for m in modules:
        left = [x for x in generated[m] if x.status in ("survived", "no-tests", "equivalent")]
        if not left:
            continue
        out += ["", f"#### {m}", ""]
        for x in left:
            what = _display(x.original, x.mutated).replace("|", "\\|")
            tag = {"no-tests": " (no test executes it)", "equivalent": f" **equivalent**: {x.equivalent}"}.get(x.status, "")
            out.append(f"- `{x.path}:{x.line}` {x.operator}: `{what}`{tag}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_map":
        return _map_main(argv[1:])
    if argv and argv[0] == "_worker":
        return _worker_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--module", action="append", help=f"module(s) to mutate, repeatable or comma-separated (default: all of {', '.join(MODULES)})"
    )
    parser.add_argument("--sample", type=int, default=0, help="a random sample of N mutants per module (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample")
    parser.add_argument("--jobs", type=int, default=max(1, os.cpu_count() or 1), help="parallel workers (default: the CPU count)")
    parser.add_argument("--json", help="write every mutant and the figures to this file")
    parser.add_argument("--markdown", help="write the figures and survivors as Markdown (for docs/mutation.md)")
    parser.add_argument(
        "--timeout-factor", type=float, default=3.0, help="timeout per mutant: this x the selected tests' time, plus start-up"
    )
    parser.add_argument(
        "--max-test-seconds", type=float, default=10.0, help="leave out tests slower than this in the mapping run (0: keep all)"
    )
    parser.add_argument(
        "--tests", nargs="+", default=["pepm_assets_tests"], help="candidate test files or folders (default: the whole suite)"
    )
    parser.add_argument("--operators", nargs="+", help=f"mutation operators (default: {' '.join(DEFAULT_OPERATORS)})")
    parser.add_argument("--strings", action="store_true", help="also mutate string constants")
    parser.add_argument("--tracer", choices=["auto", "coverage", "settrace"], default="auto", help="line tracer of the mapping run")
    parser.add_argument(
        "--source",
        choices=["worktree", "head"],
        default="worktree",
        help="what is measured: the working tree as it is (default), or the last commit (for a recorded result)",
    )
    parser.add_argument("--workdir", help="where the copies go (default: a temporary folder, removed at the end); reused when given")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--remap", action="store_true", help="run the mapping again even if cached")
    parser.add_argument("--no-preload", action="store_true", help="do not import the third-party libraries in the workers before forking")
    parser.add_argument("--no-clean-check", action="store_true", help="skip the unmutated run of each module's tests")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--show-keys", action="store_true", help="print each survivor's EQUIVALENT key")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    signal.signal(signal.SIGTERM, _interrupted)  # cleans up like Ctrl-C: workers stopped, copies removed
    return run(args)


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
