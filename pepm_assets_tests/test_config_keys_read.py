"""Every config key has an effect: some code outside the config package reads it.

Walks what a run sees after resolution (ResolvedParams, CommonConfig and every pydantic model
reachable from them through fields, dicts, lists and optionals) and looks, in pepm_assets/**/*.py
outside pepm_assets/core/config(.py|/), for a read of each field: `.name` (not called), `["name"]`,
`.get("name")` / `.pop("name")` or `getattr(x, "name")`. A public method or property of a config
model counts as reading what its body reads once something outside uses it (EarlyStop.judge reads
min_accuracy). A generic dump (`model_dump`, the params hash) reads nothing by name: a key that only
changes params_hash has no effect (hardware.ram_gb did exactly that).

Names alone would let a key hide behind another model's field of the same name (the profile's
quality.max_reject_rate behind corpora.yml's), so `.name` counts for a model only when its receiver
is that model or of unknown type. Receivers are typed from annotations, assignments, loops and
functions' return annotations; what cannot be typed counts for every model (never a false report).
"""

from __future__ import annotations

import ast
import collections.abc
import functools
import importlib.util
import inspect
import sys
import textwrap
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from pepm_assets.core import config

from .fixtures import REPO

PACKAGE = REPO / "pepm_assets"
ROOTS = (config.ResolvedParams, config.CommonConfig)

# Fields that no code can read by name, with the reason. Keep it short; entering params_hash or a
# metadata dump is NOT a reason (that is the bug this test is for).
ALLOWED: dict[tuple[str, str], str] = {
    # read by resolution only (config/resolve.py): the profile's named preset becomes a ResolvedParams
    # field (balance, hardware), whose reads this test checks
    ("CommonConfig", "balance_presets"): "ResolvedParams.balance",
    ("CommonConfig", "hardware"): "ResolvedParams.hardware",
}

# A receiver's shape: a config model class, ("dict", shape), ("list", shape), ("other", class name)
# for a pepm class that is not a config model, or None when unknown.
Shape = Any
DICTS = ("dict", "Dict", "Mapping", "MutableMapping")
LISTS = ("list", "List", "Sequence", "Iterable", "Iterator", "set", "frozenset")


def shape_of_type(tp: Any) -> Shape:
    """The shape of a runtime annotation (a pydantic field's)."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    origin, args = get_origin(tp), [a for a in get_args(tp) if a is not type(None)]
    if origin is Annotated:
        return shape_of_type(args[0])
    if origin in (Union, types.UnionType):
        return shape_of_type(args[0]) if len(args) == 1 else None
    if origin in (dict, collections.abc.Mapping) and args:
        return ("dict", shape_of_type(args[-1]))
    if origin in (list, set, frozenset, collections.abc.Sequence) and args:
        return ("list", shape_of_type(args[0]))
    return None


@dataclass
class Types:
    """What the scan knows: config models and other pepm classes by name, functions' return shapes."""

    models: dict[str, type[BaseModel]]
    others: set[str] = field(default_factory=set)
    returns: dict[str, Shape] = field(default_factory=dict)

    def of_annotation(self, node: ast.AST | None) -> Shape:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            sides = [s for s in (node.left, node.right) if not (isinstance(s, ast.Constant) and s.value is None)]
            return self.of_annotation(sides[0]) if len(sides) == 1 else None
        if isinstance(node, ast.Subscript):
            base = _name(node.value)
            args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if base in DICTS and len(args) == 2:
                return ("dict", self.of_annotation(args[1]))
            if base in LISTS:
                return ("list", self.of_annotation(args[0]))
            if base in ("Optional", "Annotated"):
                return self.of_annotation(args[0])
            return None
        name = _name(node) if node is not None else None
        if name in self.models:
            return self.models[name]
        return ("other", name) if name in self.others else None


def _name(node: ast.AST) -> str | None:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None


def _own(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a scope, not those of the functions and classes it defines (their decorators,
    defaults and bases are the scope's)."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            stack += [*node.decorator_list, *node.args.defaults, *(d for d in node.args.kw_defaults if d)]
        elif isinstance(node, ast.ClassDef):
            stack += [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]
        else:
            stack.extend(ast.iter_child_nodes(node))


class Scope:
    """Names of one function (or module, or class body) and their shapes, inferred to a fixed point."""

    def __init__(self, node: ast.AST, types_: Types, parent: dict[str, Shape], self_shape: Shape = None) -> None:
        self.types, self.env = types_, dict(parent)
        self.nodes = list(_own(node))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            for i, arg in enumerate(arguments):
                self.env[arg.arg] = self_shape if i == 0 and self_shape is not None else self.types.of_annotation(arg.annotation)
        for _ in range(3):  # x = a.b; y = x.c: each pass types one more link
            seen: dict[str, set] = {}
            for target, shape in self._bindings():
                seen.setdefault(target, set()).add(shape)
            self.env.update({name: shapes.pop() if len(shapes) == 1 else None for name, shapes in seen.items()})

    def _bindings(self) -> Iterator[tuple[str, Shape]]:
        for node in self.nodes:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                yield node.targets[0].id, self.shape(node.value)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                yield node.target.id, self.types.of_annotation(node.annotation)
            elif isinstance(node, (ast.For, ast.comprehension)):
                yield from self._loop(node.target, node.iter)

    def _loop(self, target: ast.AST, iterable: ast.AST) -> Iterator[tuple[str, Shape]]:
        method = iterable.func.attr if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Attribute) else None
        owner = self.shape(iterable.func.value) if method else self.shape(iterable)
        if method in ("values", "items") and isinstance(owner, tuple) and owner[0] == "dict":
            value = owner[1]
            if method == "values" and isinstance(target, ast.Name):
                yield target.id, value
            elif method == "items" and isinstance(target, ast.Tuple) and len(target.elts) == 2 and isinstance(target.elts[1], ast.Name):
                yield target.elts[1].id, value
        elif method is None and isinstance(owner, tuple) and owner[0] == "list" and isinstance(target, ast.Name):
            yield target.id, owner[1]

    def shape(self, node: ast.AST) -> Shape:
        if isinstance(node, ast.Name):
            return self.env.get(node.id)
        if isinstance(node, ast.Attribute):
            owner = self.shape(node.value)
            if isinstance(owner, type) and node.attr in owner.model_fields:
                return shape_of_type(owner.model_fields[node.attr].annotation)
            return None
        if isinstance(node, ast.Subscript):
            owner = self.shape(node.value)
            return owner[1] if isinstance(owner, tuple) and owner[0] in ("dict", "list") else None
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("get", "model_copy"):
                owner = self.shape(func.value)
                if func.attr == "model_copy":
                    return owner
                if isinstance(owner, tuple) and owner[0] == "dict":
                    return owner[1]
            return self.types.returns.get(_name(func))
        return None


@dataclass
class Reads:
    """What code reads: (name, receiver) for attributes read and names called, where the receiver
    is a config model, None (unknown) or "other" (known not to be one); and literal keys."""

    attributes: set[tuple[str, Any]] = field(default_factory=set)
    calls: set[tuple[str, Any]] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)

    def add(self, scope: Scope) -> None:
        called = {id(node.func) for node in scope.nodes if isinstance(node, ast.Call)}
        for node in scope.nodes:
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                owner = scope.shape(node.value)
                receiver = owner if owner is None or isinstance(owner, type) else "other"
                (self.calls if id(node) in called else self.attributes).add((node.attr, receiver))
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _literal(node.slice):
                self.keys.add(node.slice.value)
            elif isinstance(node, ast.Call) and node.args:
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr in ("get", "pop") and _literal(node.args[0]):
                    self.keys.add(node.args[0].value)
                elif isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) >= 2 and _literal(node.args[1]):
                    self.keys.add(node.args[1].value)

    def reads(self, model: type[BaseModel], name: str) -> bool:
        return name in self.keys or bool({(name, model), (name, None)} & self.attributes)

    def uses(self, model: type[BaseModel], name: str) -> bool:
        """A method called, or a property read, on that model or on something untyped."""
        return bool({(name, model), (name, None)} & (self.attributes | self.calls))


def _literal(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def scan(tree: ast.AST, types_: Types, reads: Reads, parent: dict[str, Shape] | None = None, self_shape: Shape = None) -> None:
    """Record the reads of a scope and of every function and class defined in it."""
    scope = Scope(tree, types_, parent or {}, self_shape)
    reads.add(scope)
    for node in scope.nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            scan(node, types_, reads, scope.env, self_shape if isinstance(tree, ast.ClassDef) else None)
        elif isinstance(node, ast.ClassDef):
            scan(node, types_, reads, scope.env, types_.models.get(node.name) or ("other", node.name))


def reachable_models(roots: Iterable[type[BaseModel]]) -> dict[type[BaseModel], str]:
    """Every model reachable from `roots` -> the first dotted path it was reached by."""
    found: dict[type[BaseModel], str] = {}

    def visit(annotation: Any, path: str) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in found:
                found[annotation] = path
                for name, info in annotation.model_fields.items():
                    visit(info.annotation, f"{path}.{name}")
            return
        container = get_origin(annotation) in (list, dict, tuple, set, frozenset)
        for arg in get_args(annotation):
            visit(arg, f"{path}[]" if container else path)

    for root in roots:
        visit(root, root.__name__)
    return found


def config_sources(module: types.ModuleType) -> list[Path]:
    """The config module's files: the package's folder when it is one."""
    path = Path(module.__file__).resolve()
    return sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]


def unread_fields(roots: Iterable[type[BaseModel]], package: Path, excluded: Iterable[Path]) -> list[tuple[str, str, str]]:
    """(model, field, path it was reached by) of every field nothing outside the config reads."""
    models = reachable_models(roots)
    by_name = {cls.__name__: cls for root in roots for cls in vars(sys.modules[root.__module__]).values() if _is_model(cls)}
    by_name.update({cls.__name__: cls for cls in models})
    excluded = {p.resolve() for p in excluded}
    files = {path: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(package.rglob("*.py"))}
    types_ = Types(by_name)
    functions: dict[str, set] = {}
    for tree in files.values():
        types_.others |= {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name not in by_name}
    for tree in files.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.setdefault(node.name, set()).add(types_.of_annotation(node.returns))
    types_.returns = {name: shapes.pop() for name, shapes in functions.items() if len(shapes) == 1}  # one meaning only

    reads = Reads()
    for path, tree in files.items():
        if path.resolve() not in excluded:
            scan(tree, types_, reads)
    methods = [
        (model, node) for model in models for node in _class_body(model) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    expanded: set[int] = set()
    while due := [(m, node) for m, node in methods if id(node) not in expanded and reads.uses(m, node.name)]:
        for model, node in due:  # a method used from outside reads what its body reads
            expanded.add(id(node))
            scan(node, types_, reads, {}, model)
    return [
        (model.__name__, name, f"{path}.{name}")
        for model, path in models.items()
        for name in model.model_fields
        if not reads.reads(model, name)
    ]


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


def _class_body(model: type[BaseModel]) -> list[ast.stmt]:
    return ast.parse(textwrap.dedent(inspect.getsource(model))).body[0].body


def _hint(model: str, name: str, path: str) -> str:
    return (
        f"{model}.{name} (reached as {path}): nothing outside the config package reads `.{name}` on a {model} "
        f'(or untyped), nor ["{name}"]; give it an effect or remove it (changing params_hash is not an effect)'
    )


@functools.cache
def _unread_today() -> list[tuple[str, str, str]]:
    return unread_fields(ROOTS, PACKAGE, config_sources(config))


def test_every_config_key_is_read_outside_the_config_package() -> None:
    unread = [u for u in _unread_today() if u[:2] not in ALLOWED]
    assert not unread, "config keys with no effect:\n" + "\n".join(_hint(*u) for u in unread)


def test_allowed_entries_are_still_unread() -> None:
    """An allow-listed field that code now reads by name does not need its entry."""
    unread = {u[:2] for u in _unread_today()}
    assert [key for key in ALLOWED if key not in unread] == []


def test_the_walk_reaches_nested_models() -> None:
    names = {m.__name__: path for m, path in reachable_models(ROOTS).items()}
    assert names["EarlyStop"] == "ResolvedParams.model_specs[].early_stop"  # dict values, then a field
    assert names["CrossCorpusConfig"] == "CommonConfig.cross_corpus"  # an optional
    assert {"HardwarePreset", "QualityConfig", "CorpusConfig", "DatasetConfig", "SplitConfig"} <= set(names)


SCHEMA = """
from pydantic import BaseModel

class Gate(BaseModel):
    limit: float = 1.0
    strict: bool = False

    def passes(self, x):
        return x <= self.limit

class Corpus(BaseModel):
    max_reject_rate: float = 0.05
    enabled: bool = True

class Quality(BaseModel):
    max_reject_rate: float = 0.05

class Params(BaseModel):
    seed: int = 0
    by_key: int = 0
    by_get: int = 0
    by_getattr: int = 0
    hashed_only: int = 0
    gates: dict[str, Gate] = {}
    corpora: dict[str, Corpus] = {}
    quality: Quality = Quality()
    called: str = ""
"""

USER = """
import hashlib, json

class Tracker:
    enabled: bool = True

    def on(self):
        return self.enabled  # a Tracker's, not Corpus.enabled

def load() -> Params:
    ...

def gate(rate, cfg: Corpus):
    return rate <= cfg.max_reject_rate

def run(dumped):
    params = load()
    hashlib.sha256(json.dumps(params.model_dump()).encode())
    params.called()
    ok = all(g.passes(1) for g in params.gates.values())
    for cid, corpus in params.corpora.items():
        gate(corpus.max_reject_rate, corpus)
    return params.seed, dumped["by_key"], dumped.get("by_get"), getattr(params, "by_getattr"), ok
"""


def test_the_check_tells_read_keys_from_unread_ones(tmp_path: Path) -> None:
    """Each way of reading counts; a field that only enters a dump or a hash does not, nor one
    whose name is read only on another model or class."""
    (tmp_path / "schema.py").write_text(SCHEMA, encoding="utf-8")
    (tmp_path / "user.py").write_text(USER, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("pepm_scratch_schema", tmp_path / "schema.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # inspect.getsource finds the classes' file through it
    try:
        spec.loader.exec_module(module)
        unread = unread_fields([module.Params], tmp_path, [tmp_path / "schema.py"])
    finally:
        del sys.modules[spec.name]
    assert unread == [
        ("Params", "hashed_only", "Params.hashed_only"),
        ("Params", "quality", "Params.quality"),
        ("Params", "called", "Params.called"),  # a call is a method, not a field read
        ("Gate", "strict", "Params.gates[].strict"),  # `limit` is read by passes(), which run() calls
        ("Corpus", "enabled", "Params.corpora[].enabled"),  # read on a Tracker only
        ("Quality", "max_reject_rate", "Params.quality.max_reject_rate"),  # read on a Corpus only
    ]
