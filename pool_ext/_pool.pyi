"""Type stubs for the compiled module pool_ext._pool (re-exported by pool_ext)."""
from traceback import StackSummary
from types import TracebackType
from typing import (
    TYPE_CHECKING, Any, Awaitable, Callable, Dict, Generic, Iterable, Literal, Optional, SupportsIndex,
    Tuple, Type, TypeVar, Union, final, overload, NamedTuple,
)

if TYPE_CHECKING:
    import numpy
    from numpy.typing import DTypeLike, NDArray

    # A dtype given as a scalar type (np.float32) or a dtype object: the
    # array's type says which; anything else ("f4", a list) gives NDArray[Any].
    _SCT = TypeVar("_SCT", bound=numpy.generic)
    _DType = Union[Type[_SCT], numpy.dtype[_SCT]]

_T = TypeVar("_T")
_Self = TypeVar("_Self")

ATOMICS: str
# 2**31 - 1, the slot-index limit; memory bounds a capacity sooner (52 to 84
# bytes per ObjectPool slot, allocated when the pool is built: docs/guide.md)
MAX_CAPACITY: int

class PoolError(ValueError): ...
class PoolClosed(PoolError): ...
class PoolExhausted(TimeoutError): ...
class PoolLeakWarning(ResourceWarning): ...

class Holder(NamedTuple):
    obj: Any
    thread_name: str
    held_seconds: float
    stack: StackSummary

_Shape = Union[SupportsIndex, Iterable[SupportsIndex]]

class _PoolBase:
    @property
    def capacity(self) -> int: ...
    @property
    def in_use(self) -> int: ...
    @property
    def available(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def name(self) -> Optional[str]: ...
    @property
    def track(self) -> bool: ...
    @property
    def leak_timeout(self) -> Optional[float]: ...
    def holders(self) -> list[Holder]: ...
    def stats(self, *, reset: bool = False) -> dict[str, int]: ...
    def __enter__(self: _Self) -> _Self: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]: ...

@final
class _AsyncLease(Generic[_T]):
    async def __aenter__(self) -> _T: ...
    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]: ...

@final
class _Lease(Generic[_T]):
    def __enter__(self) -> _T: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]: ...

@final
class ObjectPool(_PoolBase, Generic[_T]):
    # The factory's signature follows pass_slot: called with no argument by
    # default, with the slot number under pass_slot=True.  An async factory
    # (awaited by acquire_async) first, then a sync one.  pass_slot must be
    # a literal True or False for a type checker to pick the signature.
    @overload
    def __init__(
        self,
        factory: Callable[[], Awaitable[_T]],
        capacity: int,
        *,
        reset: Optional[Callable[[_T], Any]] = None,
        validate: Optional[Callable[[_T], Any]] = None,
        destroy: Optional[Callable[[_T], Any]] = None,
        prefill: int = 0,
        pass_slot: Literal[False] = False,
        check: Optional[Callable[[_T], Any]] = None,
        max_lifetime: Optional[float] = None,
        max_idle: Optional[float] = None,
        min_idle: int = 0,
        track: bool = False,
        leak_timeout: Optional[float] = None,
        name: Optional[str] = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        factory: Callable[[int], Awaitable[_T]],
        capacity: int,
        *,
        reset: Optional[Callable[[_T], Any]] = None,
        validate: Optional[Callable[[_T], Any]] = None,
        destroy: Optional[Callable[[_T], Any]] = None,
        prefill: int = 0,
        pass_slot: Literal[True],
        check: Optional[Callable[[_T], Any]] = None,
        max_lifetime: Optional[float] = None,
        max_idle: Optional[float] = None,
        min_idle: int = 0,
        track: bool = False,
        leak_timeout: Optional[float] = None,
        name: Optional[str] = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        factory: Callable[[], _T],
        capacity: int,
        *,
        reset: Optional[Callable[[_T], Any]] = None,
        validate: Optional[Callable[[_T], Any]] = None,
        destroy: Optional[Callable[[_T], Any]] = None,
        prefill: int = 0,
        pass_slot: Literal[False] = False,
        check: Optional[Callable[[_T], Any]] = None,
        max_lifetime: Optional[float] = None,
        max_idle: Optional[float] = None,
        min_idle: int = 0,
        track: bool = False,
        leak_timeout: Optional[float] = None,
        name: Optional[str] = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        factory: Callable[[int], _T],
        capacity: int,
        *,
        reset: Optional[Callable[[_T], Any]] = None,
        validate: Optional[Callable[[_T], Any]] = None,
        destroy: Optional[Callable[[_T], Any]] = None,
        prefill: int = 0,
        pass_slot: Literal[True],
        check: Optional[Callable[[_T], Any]] = None,
        max_lifetime: Optional[float] = None,
        max_idle: Optional[float] = None,
        min_idle: int = 0,
        track: bool = False,
        leak_timeout: Optional[float] = None,
        name: Optional[str] = None,
    ) -> None: ...
    def acquire(self, timeout: Optional[float] = None) -> _T: ...
    def try_acquire(self) -> Optional[_T]: ...
    def release(self, obj: _T, /) -> None: ...
    def discard(self, obj: _T, /) -> None: ...
    def lease(self, timeout: Optional[float] = None) -> _Lease[_T]: ...
    async def acquire_async(self, timeout: Optional[float] = None) -> _T: ...
    def lease_async(self, timeout: Optional[float] = None) -> _AsyncLease[_T]: ...
    async def release_async(self, obj: _T, /) -> None: ...
    async def discard_async(self, obj: _T, /) -> None: ...
    async def close_async(self) -> None: ...
    async def drain_async(self, timeout: Optional[float] = None) -> None: ...
    def close(self) -> None: ...
    def drain(self, timeout: Optional[float] = None) -> None: ...
    def evict(self) -> int: ...
    def start_evictor(self, interval: float) -> None: ...
    def stop_evictor(self) -> None: ...
    @property
    def size(self) -> int: ...
    @property
    def idle(self) -> int: ...
    @property
    def factory(self) -> Union[Callable[[], Awaitable[_T]], Callable[[int], Awaitable[_T]],
                               Callable[[], _T], Callable[[int], _T]]: ...
    @property
    def max_lifetime(self) -> Optional[float]: ...
    @property
    def max_idle(self) -> Optional[float]: ...
    @property
    def min_idle(self) -> int: ...

@final
class PooledBuffer:
    def release(self) -> None: ...
    @property
    def released(self) -> bool: ...
    @property
    def pool(self) -> Optional[Union[BufferPool, ArrayPool]]: ...
    def __len__(self) -> int: ...
    # The buffer protocol, on every version: type checkers read __buffer__
    # as "is a buffer" (collections.abc.Buffer), also for targets before
    # 3.12, where it is not a Python-level method at runtime (stubtest
    # allowlist: tests/typing).
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    def __enter__(self) -> PooledBuffer: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]: ...

# ObjectPool's methods again, typed for buffers.  At runtime each pool class
# defines its own (a method of the object's own type is cheaper to call), so
# they cannot move to _PoolBase here: stubtest checks the stub against it.
@final
class BufferPool(_PoolBase):
    def __init__(
        self,
        buffer_size: int,
        capacity: int,
        *,
        zero_on_release: bool = False,
        alignment: int = 64,
        track: bool = False,
        leak_timeout: Optional[float] = None,
        name: Optional[str] = None,
    ) -> None: ...
    def acquire(self, timeout: Optional[float] = None) -> PooledBuffer: ...
    def try_acquire(self) -> Optional[PooledBuffer]: ...
    def release(self, buf: PooledBuffer, /) -> None: ...
    def lease(self, timeout: Optional[float] = None) -> _Lease[PooledBuffer]: ...
    @overload
    def empty(
        self,
        shape: _Shape,
        dtype: None = None,
        order: Literal["C", "F"] = "C",
        *,
        timeout: Optional[float] = None,
    ) -> NDArray[numpy.float64]: ...
    @overload
    def empty(
        self,
        shape: _Shape,
        dtype: _DType[_SCT],
        order: Literal["C", "F"] = "C",
        *,
        timeout: Optional[float] = None,
    ) -> NDArray[_SCT]: ...
    @overload
    def empty(
        self,
        shape: _Shape,
        dtype: Optional[DTypeLike] = None,
        order: Literal["C", "F"] = "C",
        *,
        timeout: Optional[float] = None,
    ) -> NDArray[Any]: ...
    @overload
    def zeros(
        self,
        shape: _Shape,
        dtype: None = None,
        order: Literal["C", "F"] = "C",
        *,
        timeout: Optional[float] = None,
    ) -> NDArray[numpy.float64]: ...
    @overload
    def zeros(
        self,
        shape: _Shape,
        dtype: _DType[_SCT],
        order: Literal["C", "F"] = "C",
        *,
        timeout: Optional[float] = None,
    ) -> NDArray[_SCT]: ...
    @overload
    def zeros(
        self,
        shape: _Shape,
        dtype: Optional[DTypeLike] = None,
        order: Literal["C", "F"] = "C",
        *,
        timeout: Optional[float] = None,
    ) -> NDArray[Any]: ...
    async def acquire_async(self, timeout: Optional[float] = None) -> PooledBuffer: ...
    def lease_async(self, timeout: Optional[float] = None) -> _AsyncLease[PooledBuffer]: ...
    def close(self) -> None: ...
    @property
    def size(self) -> int: ...
    @property
    def buffer_size(self) -> int: ...
    @property
    def alignment(self) -> int: ...
    @property
    def stride(self) -> int: ...
    @property
    def zero_on_release(self) -> bool: ...

@final
class _ArrayLease(Generic[_T]):
    def __enter__(self) -> _T: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]: ...

@final
class ArrayPool:
    def __init__(
        self,
        *,
        max_bytes: int = 268435456,
        max_size: Optional[int] = None,
        alignment: int = 64,
        clear: Literal["never", "on_release", "poison"] = "never",
    ) -> None: ...
    @overload
    def empty(
        self,
        shape: _Shape,
        dtype: None = None,
        order: Literal["C", "F"] = "C",
    ) -> NDArray[numpy.float64]: ...
    @overload
    def empty(
        self,
        shape: _Shape,
        dtype: _DType[_SCT],
        order: Literal["C", "F"] = "C",
    ) -> NDArray[_SCT]: ...
    @overload
    def empty(
        self,
        shape: _Shape,
        dtype: Optional[DTypeLike] = None,
        order: Literal["C", "F"] = "C",
    ) -> NDArray[Any]: ...
    @overload
    def zeros(
        self,
        shape: _Shape,
        dtype: None = None,
        order: Literal["C", "F"] = "C",
    ) -> NDArray[numpy.float64]: ...
    @overload
    def zeros(
        self,
        shape: _Shape,
        dtype: _DType[_SCT],
        order: Literal["C", "F"] = "C",
    ) -> NDArray[_SCT]: ...
    @overload
    def zeros(
        self,
        shape: _Shape,
        dtype: Optional[DTypeLike] = None,
        order: Literal["C", "F"] = "C",
    ) -> NDArray[Any]: ...
    @overload
    def empty_like(
        self,
        a: NDArray[_SCT],
        dtype: None = None,
        order: Literal["C", "F", "K", "A"] = "K",
    ) -> NDArray[_SCT]: ...
    @overload
    def empty_like(
        self,
        a: Any,
        dtype: _DType[_SCT],
        order: Literal["C", "F", "K", "A"] = "K",
    ) -> NDArray[_SCT]: ...
    @overload
    def empty_like(
        self,
        a: Any,
        dtype: Optional[DTypeLike] = None,
        order: Literal["C", "F", "K", "A"] = "K",
    ) -> NDArray[Any]: ...
    @overload
    def zeros_like(
        self,
        a: NDArray[_SCT],
        dtype: None = None,
        order: Literal["C", "F", "K", "A"] = "K",
    ) -> NDArray[_SCT]: ...
    @overload
    def zeros_like(
        self,
        a: Any,
        dtype: _DType[_SCT],
        order: Literal["C", "F", "K", "A"] = "K",
    ) -> NDArray[_SCT]: ...
    @overload
    def zeros_like(
        self,
        a: Any,
        dtype: Optional[DTypeLike] = None,
        order: Literal["C", "F", "K", "A"] = "K",
    ) -> NDArray[Any]: ...
    @overload
    def borrow(
        self,
        shape: _Shape,
        dtype: None = None,
        order: Literal["C", "F"] = "C",
    ) -> _ArrayLease[NDArray[numpy.float64]]: ...
    @overload
    def borrow(
        self,
        shape: _Shape,
        dtype: _DType[_SCT],
        order: Literal["C", "F"] = "C",
    ) -> _ArrayLease[NDArray[_SCT]]: ...
    @overload
    def borrow(
        self,
        shape: _Shape,
        dtype: Optional[DTypeLike] = None,
        order: Literal["C", "F"] = "C",
    ) -> _ArrayLease[NDArray[Any]]: ...
    def acquire(self, nbytes: int) -> PooledBuffer: ...
    def lease(self, nbytes: int) -> _ArrayLease[PooledBuffer]: ...
    def trim(self, max_bytes: int = 0) -> int: ...
    def stats(self) -> dict[str, Any]: ...
    @property
    def retained_bytes(self) -> int: ...
    @property
    def max_bytes(self) -> int: ...
    @property
    def max_size(self) -> Optional[int]: ...
    @property
    def alignment(self) -> int: ...
    @property
    def clear(self) -> str: ...

arrays: ArrayPool

class Queue(Generic[_T]):
    """A FIFO queue with queue.Queue's API, in C (docs/queues.md)."""
    Empty: type[BaseException]
    Full: type[BaseException]
    def __init__(self, maxsize: int = 0) -> None: ...
    @property
    def maxsize(self) -> int: ...
    @property
    def queue(self) -> list[_T]: ...
    def qsize(self) -> int: ...
    def empty(self) -> bool: ...
    def full(self) -> bool: ...
    def put(self, item: _T, block: bool = True, timeout: Optional[float] = None) -> None: ...
    def put_nowait(self, item: _T) -> None: ...
    def get(self, block: bool = True, timeout: Optional[float] = None) -> _T: ...
    def get_nowait(self) -> _T: ...

class LifoQueue(Queue[_T]):
    """A LIFO queue with queue.LifoQueue's API, in C (docs/queues.md)."""

@final
class SharedBuffer:
    def release(self) -> None: ...
    @property
    def released(self) -> bool: ...
    @property
    def pool(self) -> Optional[SharedBufferPool]: ...
    @property
    def index(self) -> int: ...
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    def __enter__(self) -> SharedBuffer: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]: ...
    def __reduce__(self) -> Tuple[Any, ...]: ...

@final
class _SharedLease:
    def __enter__(self) -> SharedBuffer: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]: ...

@final
class SharedBufferPool:
    def __init__(
        self,
        block_size: int,
        capacity: int,
        *,
        alignment: int = 64,
        name: Optional[str] = None,
    ) -> None: ...
    @staticmethod
    def attach(name: str) -> SharedBufferPool: ...
    def acquire(self, timeout: Optional[float] = None) -> SharedBuffer: ...
    def try_acquire(self) -> Optional[SharedBuffer]: ...
    def release(self, buf: SharedBuffer) -> None: ...
    def lease(self, timeout: Optional[float] = None) -> _SharedLease: ...
    def empty(
        self,
        shape: _Shape,
        dtype: Optional[DTypeLike] = None,
        order: Literal["C", "F"] = "C",
        *,
        timeout: Optional[float] = None,
    ) -> NDArray[Any]: ...
    def zeros(
        self,
        shape: _Shape,
        dtype: Optional[DTypeLike] = None,
        order: Literal["C", "F"] = "C",
        *,
        timeout: Optional[float] = None,
    ) -> NDArray[Any]: ...
    @overload
    def recall(self, sent: SharedBuffer) -> SharedBuffer: ...
    @overload
    def recall(self, sent: Any) -> Any: ...
    def reclaim(self, *, in_transit: bool = False) -> int: ...
    def stats(self) -> Dict[str, Any]: ...
    def close(self) -> None: ...
    def __enter__(self) -> SharedBufferPool: ...
    def __exit__(self, *exc: object) -> Literal[False]: ...
    def __reduce__(self) -> Tuple[Any, ...]: ...
    @property
    def name(self) -> str: ...
    @property
    def block_size(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def alignment(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def in_use(self) -> int: ...
    @property
    def available(self) -> int: ...
