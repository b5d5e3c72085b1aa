"""The seed article's Connection class works unchanged in an ObjectPool."""
import pytest

from pool_ext import ObjectPool


class Connection:  # verbatim from the seed article
    def __init__(self, id):
        self.id = id
        self.is_in_use = False

    def open(self):
        print(f"Connection {self.id} opened")
        self.is_in_use = True

    def close(self):
        print(f"Connection {self.id} closed")
        self.is_in_use = False


def test_seed_walkthrough(capsys):
    ids = iter(range(100))
    pool = ObjectPool(lambda: Connection(next(ids)), capacity=5,
                      reset=Connection.close)
    connections = []
    for _ in range(5):
        conn = pool.try_acquire()
        assert conn is not None
        conn.open()
        connections.append(conn)
    assert pool.try_acquire() is None      # the seed's get_connection() -> None
    for conn in connections:
        pool.release(conn)
    again = [pool.try_acquire() for _ in range(3)]
    assert all(c in connections for c in again)
    assert not any(c.is_in_use for c in again)
    assert "Connection 0 opened" in capsys.readouterr().out


def test_connection_class_itself_as_factory(capsys):
    # ObjectPool(Connection, 5, pass_slot=True), the class unchanged: the pool
    # passes the slot number as Connection(id)'s id, as the article's pool
    # numbered its connections.
    pool = ObjectPool(Connection, 5, pass_slot=True)
    connections = []
    for _ in range(5):
        conn = pool.try_acquire()
        assert isinstance(conn, Connection)
        conn.open()
        connections.append(conn)
    assert sorted(c.id for c in connections) == [0, 1, 2, 3, 4]
    assert pool.try_acquire() is None      # where get_connection() returned None
    for conn in connections:
        conn.close()
        pool.release(conn)
    assert pool.try_acquire() in connections
    assert "Connection 4 opened" in capsys.readouterr().out


def test_connection_class_without_pass_slot_says_what_is_missing():
    # The factory is called with no argument: Connection() lacks its id.
    pool = ObjectPool(Connection, 5)
    with pytest.raises(TypeError, match="id"):
        pool.acquire()
    assert pool.in_use == 0
