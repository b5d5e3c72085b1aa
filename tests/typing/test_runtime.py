"""What typing needs from the compiled module at run time, as a new user meets
it: the generic ObjectPool can be subscripted (annotations are evaluated in
class bodies and dataclasses), inspect.signature() works on every public
method and matches the stubs, and the constructors' docstrings show the
keyword-only parameters as keyword-only.
"""
import ast
import dataclasses
import inspect
import sys
import typing

import pytest

from pool_ext import BufferPool, ObjectPool, PooledBuffer

P = inspect.Parameter
POS_ONLY, POS_OR_KW, KW_ONLY = P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY
NONE = P.empty      # no default

# ---- ObjectPool[T] ----------------------------------------------------------


def test_objectpool_is_subscriptable_at_runtime():
    alias = ObjectPool[int]
    assert typing.get_origin(alias) is ObjectPool
    assert typing.get_args(alias) == (int,)


def test_bufferpool_is_not_generic():
    # The stub makes only ObjectPool generic; the runtime must agree.
    with pytest.raises(TypeError):
        BufferPool[int]


DATACLASS_MODULE = '''
import dataclasses
from typing import Optional

from pool_ext import BufferPool, ObjectPool


class Conn:
    pass


@dataclasses.dataclass
class Service:
    conns: ObjectPool[Conn]
    buffers: Optional[BufferPool] = None


class Registry:
    default: ObjectPool[Conn]
    by_name: dict[str, ObjectPool[Conn]] = {}


service = Service(ObjectPool(Conn, capacity=2))
with service.conns.lease() as conn:
    assert isinstance(conn, Conn)
'''


def test_dataclass_field_annotated_objectpool_of_a_class_imports(tmp_path, monkeypatch):
    """No `from __future__ import annotations`: the annotations run when the
    module is imported, as in most user code."""
    (tmp_path / "user_service.py").write_text(DATACLASS_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_service", raising=False)
    import user_service
    fields = {f.name: f.type for f in dataclasses.fields(user_service.Service)}
    assert typing.get_origin(fields["conns"]) is ObjectPool
    assert typing.get_args(fields["conns"]) == (user_service.Conn,)
    # a plain class body's annotations too (evaluated lazily from 3.14 on)
    hints = typing.get_type_hints(user_service.Registry)
    assert typing.get_args(hints["default"]) == (user_service.Conn,)


# ---- inspect.signature --------------------------------------------------------

# Every public method, with the parameters the stubs (pool_ext/_pool.pyi) and
# the README give it: (name, kind, default), self not included.
TIMEOUT = ("timeout", POS_OR_KW, None)
RESET = ("reset", KW_ONLY, False)
METHODS = {
    ObjectPool: {
        "acquire": [TIMEOUT],
        "try_acquire": [],
        "release": [("obj", POS_ONLY, NONE)],
        "discard": [("obj", POS_ONLY, NONE)],
        "lease": [TIMEOUT],
        "acquire_async": [TIMEOUT],
        "lease_async": [TIMEOUT],
        "release_async": [("obj", POS_ONLY, NONE)],
        "discard_async": [("obj", POS_ONLY, NONE)],
        "close_async": [],
        "drain_async": [TIMEOUT],
        "close": [],
        "drain": [TIMEOUT],
        "evict": [],
        "start_evictor": [("interval", POS_OR_KW, NONE)],
        "stop_evictor": [],
        "holders": [],
        "stats": [RESET],
    },
    BufferPool: {
        "acquire": [TIMEOUT],
        "try_acquire": [],
        "release": [("buf", POS_ONLY, NONE)],
        "lease": [TIMEOUT],
        "acquire_async": [TIMEOUT],
        "lease_async": [TIMEOUT],
        "empty": [("shape", POS_OR_KW, NONE), ("dtype", POS_OR_KW, None),
                  ("order", POS_OR_KW, "C"), ("timeout", KW_ONLY, None)],
        "zeros": [("shape", POS_OR_KW, NONE), ("dtype", POS_OR_KW, None),
                  ("order", POS_OR_KW, "C"), ("timeout", KW_ONLY, None)],
        "close": [],
        "holders": [],
        "stats": [RESET],
    },
    PooledBuffer: {
        "release": [],
    },
}

# keyword-only parameters both constructors take
OBSERVING = [("track", KW_ONLY, False), ("leak_timeout", KW_ONLY, None), ("name", KW_ONLY, None)]
CONSTRUCTORS = {
    ObjectPool: [("factory", POS_OR_KW, NONE), ("capacity", POS_OR_KW, NONE),
                 ("reset", KW_ONLY, None), ("validate", KW_ONLY, None),
                 ("destroy", KW_ONLY, None), ("prefill", KW_ONLY, 0),
                 ("pass_slot", KW_ONLY, False), ("check", KW_ONLY, None),
                 ("max_lifetime", KW_ONLY, None), ("max_idle", KW_ONLY, None),
                 ("min_idle", KW_ONLY, 0)] + OBSERVING,
    BufferPool: [("buffer_size", POS_OR_KW, NONE), ("capacity", POS_OR_KW, NONE),
                 ("zero_on_release", KW_ONLY, False), ("alignment", KW_ONLY, 64)] + OBSERVING,
}


def public_methods(cls):
    return sorted(name for name in dir(cls)
                  if not name.startswith("_") and inspect.isroutine(getattr(cls, name)))


def parameters(signature):
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def instance(cls):
    if cls is ObjectPool:
        return ObjectPool(object, 1)
    if cls is BufferPool:
        return BufferPool(8, 1)
    return BufferPool(8, 1).acquire()


@pytest.mark.parametrize("cls", list(METHODS), ids=lambda c: c.__name__)
def test_the_table_names_every_public_method(cls):
    assert public_methods(cls) == sorted(METHODS[cls])


@pytest.mark.parametrize("cls,name", [(cls, name) for cls in METHODS for name in METHODS[cls]],
                         ids=lambda x: getattr(x, "__name__", x))
def test_inspect_signature_of_every_public_method(cls, name):
    obj = instance(cls)
    try:
        bound = inspect.signature(getattr(obj, name))
        unbound = inspect.signature(getattr(cls, name))
    finally:
        if cls is PooledBuffer:
            obj.release()
    assert parameters(bound) == METHODS[cls][name], str(bound)
    self_param, *rest = unbound.parameters.values()
    assert self_param.name == "self"
    assert [(p.name, p.kind, p.default) for p in rest] == METHODS[cls][name], str(unbound)


@pytest.mark.parametrize("cls", list(CONSTRUCTORS), ids=lambda c: c.__name__)
def test_inspect_signature_of_the_constructors(cls):
    signature = inspect.signature(cls)
    assert parameters(signature) == CONSTRUCTORS[cls], str(signature)


@pytest.mark.parametrize("cls", list(CONSTRUCTORS), ids=lambda c: c.__name__)
def test_constructor_docstring_shows_keyword_only_parameters_as_such(cls):
    """The docstring's first line, `ObjectPool(factory, capacity, *, reset=None,
    ...)`, is what help() and IDEs show: it must say what the constructor
    accepts (hooks, prefill, zero_on_release and alignment are keyword-only)."""
    first = (cls.__doc__ or "").strip().splitlines()[0]
    assert first.startswith(cls.__name__ + "("), first
    args = ast.parse(f"def f{first[len(cls.__name__):]}: pass").body[0].args
    shown = ([a.arg for a in args.posonlyargs + args.args], [a.arg for a in args.kwonlyargs])
    documented = ([name for name, kind, _ in CONSTRUCTORS[cls] if kind is POS_OR_KW],
                  [name for name, kind, _ in CONSTRUCTORS[cls] if kind is KW_ONLY])
    assert shown == documented, f"{first!r} shows (positional, keyword-only) {shown}"
