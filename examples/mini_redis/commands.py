"""The commands of mini-redis: one small function each, and the table that names them.

A command function takes the session (the connection's state and the keyspace) and the
arguments after the command's name, and returns its reply *already encoded*: replies are
built where they are made (``resp.OK``, ``resp.bulk(value)``, ``resp.encode(items)``) and
appended to the connection's write buffer, so a pipelined burst costs one ``send``. A
function that fails raises :class:`~db.CommandError`; its message is the error reply.

``ARITY`` follows Redis: a positive number is the exact count of words (the name included),
a negative one the least.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import resp
from .db import NOT_INTEGER, CommandError

if TYPE_CHECKING:
    from .server import Session

Command = Callable[["Session", list[bytes]], bytes]

SYNTAX = "ERR syntax error"
CONFIG = {b"save": b"", b"appendonly": b"no", b"databases": b"1", b"timeout": b"0"}
"""What ``CONFIG GET`` answers. redis-benchmark asks for ``save`` and ``appendonly``."""


def integer(word: bytes) -> int:
    """A Redis integer argument, or CommandError."""
    try:
        number = int(word)
    except ValueError:
        raise CommandError(NOT_INTEGER) from None
    if not -(2**63) <= number < 2**63 or word != b"%d" % number:
        raise CommandError(NOT_INTEGER)
    return number


def ping(session: Session, args: list[bytes]) -> bytes:
    if len(args) > 1:
        raise CommandError("ERR wrong number of arguments for 'ping' command")
    if session.subscriptions:  # a subscribed connection answers a push-style pair
        return resp.encode([b"pong", args[0] if args else b""])
    return resp.bulk(args[0]) if args else resp.PONG


def echo(session: Session, args: list[bytes]) -> bytes:
    return resp.bulk(args[0])


def get(session: Session, args: list[bytes]) -> bytes:
    value = session.db.get(args[0])
    return resp.NULL_BULK if value is None else resp.bulk(value)


def set_(session: Session, args: list[bytes]) -> bytes:
    key, value = args[0], args[1]
    ttl: float | None = None
    nx = xx = keepttl = False
    options = iter(args[2:])
    for word in options:
        option = word.upper()
        if option == b"NX" and not xx:
            nx = True
        elif option == b"XX" and not nx:
            xx = True
        elif option == b"KEEPTTL" and ttl is None:
            keepttl = True
        elif option in (b"EX", b"PX") and ttl is None and not keepttl:
            amount = integer(next(options, b"") or _syntax())
            if amount <= 0:
                raise CommandError("ERR invalid expire time in 'set' command")
            ttl = amount if option == b"EX" else amount / 1000
        else:
            raise CommandError(SYNTAX)
    stored = session.db.set(key, value, ttl=ttl, nx=nx, xx=xx, keepttl=keepttl)
    return resp.OK if stored else resp.NULL_BULK


def _syntax() -> bytes:
    raise CommandError(SYNTAX)


def incr(session: Session, args: list[bytes]) -> bytes:
    return b":%d\r\n" % session.db.incr(args[0], 1)


def decr(session: Session, args: list[bytes]) -> bytes:
    return b":%d\r\n" % session.db.incr(args[0], -1)


def incrby(session: Session, args: list[bytes]) -> bytes:
    return b":%d\r\n" % session.db.incr(args[0], integer(args[1]))


def delete(session: Session, args: list[bytes]) -> bytes:
    return b":%d\r\n" % session.db.delete(args)


def exists(session: Session, args: list[bytes]) -> bytes:
    return b":%d\r\n" % session.db.exists(args)


def expire(session: Session, args: list[bytes], scale: float = 1.0) -> bytes:
    if len(args) > 2:
        raise CommandError("ERR EXPIRE options (NX, XX, GT, LT) are not supported here")
    return b":%d\r\n" % session.db.expire(args[0], integer(args[1]) * scale)


def pexpire(session: Session, args: list[bytes]) -> bytes:
    return expire(session, args, 0.001)


def ttl(session: Session, args: list[bytes], scale: float = 1.0) -> bytes:
    left = session.db.ttl(args[0])
    if left is None:
        return b":-2\r\n"
    if left < 0:
        return b":-1\r\n"
    return b":%d\r\n" % round(left * scale)  # Redis rounds TTL to the nearest second too


def pttl(session: Session, args: list[bytes]) -> bytes:
    return ttl(session, args, 1000.0)


def persist(session: Session, args: list[bytes]) -> bytes:
    return b":%d\r\n" % session.db.persist(args[0])


def type_(session: Session, args: list[bytes]) -> bytes:
    return b"+%s\r\n" % session.db.type(args[0]).encode()


def lpush(session: Session, args: list[bytes]) -> bytes:
    return b":%d\r\n" % session.db.push(args[0], args[1:], left=True)


def rpush(session: Session, args: list[bytes]) -> bytes:
    return b":%d\r\n" % session.db.push(args[0], args[1:], left=False)


def lrange(session: Session, args: list[bytes]) -> bytes:
    return resp.encode(session.db.range(args[0], integer(args[1]), integer(args[2])))


def llen(session: Session, args: list[bytes]) -> bytes:
    return b":%d\r\n" % session.db.length(args[0])


def dbsize(session: Session, args: list[bytes]) -> bytes:
    return b":%d\r\n" % len(session.db.data)


def flushall(session: Session, args: list[bytes]) -> bytes:
    session.db.flush()
    return resp.OK


def publish(session: Session, args: list[bytes]) -> bytes:
    return b":%d\r\n" % session.db.publish(args[0], args[1])


def subscribe(session: Session, args: list[bytes]) -> bytes:
    replies = [resp.encode([b"subscribe", name, session.subscribe(name)]) for name in args]
    return b"".join(replies)


def unsubscribe(session: Session, args: list[bytes]) -> bytes:
    names = args or list(session.subscriptions)
    if not names:
        return resp.encode([b"unsubscribe", None, 0])
    replies = [resp.encode([b"unsubscribe", name, session.unsubscribe(name)]) for name in names]
    return b"".join(replies)


def config(session: Session, args: list[bytes]) -> bytes:
    if args[0].upper() != b"GET" or len(args) < 2:
        raise CommandError(f"ERR CONFIG {_text(args[0])} is not supported here; try CONFIG GET")
    reply: list[bytes] = []
    for pattern in args[1:]:
        for name, value in CONFIG.items():
            if fnmatch.fnmatchcase(name.decode(), pattern.decode(errors="replace").lower()):
                reply += [name, value]
    return resp.encode(reply)


def hello(session: Session, args: list[bytes]) -> bytes:
    if args and args[0] != b"2":
        raise CommandError("NOPROTO this server speaks RESP2 only (HELLO 2, or no HELLO)")
    return resp.encode(
        [b"server", b"mini-redis", b"version", b"7.0.0", b"proto", 2, b"mode", b"standalone"]
    )


def client(session: Session, args: list[bytes]) -> bytes:
    if args[0].upper() in (b"SETNAME", b"SETINFO"):
        return resp.OK
    raise CommandError(f"ERR CLIENT {_text(args[0])} is not supported here")


def select(session: Session, args: list[bytes]) -> bytes:
    if args[0] != b"0":
        raise CommandError("ERR DB index is out of range (mini-redis has only database 0)")
    return resp.OK


def quit_(session: Session, args: list[bytes]) -> bytes:
    session.quitting = True
    return resp.OK


def _text(word: bytes) -> str:
    return word.decode(errors="replace")


COMMANDS: dict[bytes, tuple[Command, int]] = {
    b"PING": (ping, -1),
    b"ECHO": (echo, 2),
    b"GET": (get, 2),
    b"SET": (set_, -3),
    b"INCR": (incr, 2),
    b"DECR": (decr, 2),
    b"INCRBY": (incrby, 3),
    b"DEL": (delete, -2),
    b"EXISTS": (exists, -2),
    b"EXPIRE": (expire, -3),
    b"PEXPIRE": (pexpire, -3),
    b"TTL": (ttl, 2),
    b"PTTL": (pttl, 2),
    b"PERSIST": (persist, 2),
    b"TYPE": (type_, 2),
    b"LPUSH": (lpush, -3),
    b"RPUSH": (rpush, -3),
    b"LRANGE": (lrange, 4),
    b"LLEN": (llen, 2),
    b"DBSIZE": (dbsize, 1),
    b"FLUSHALL": (flushall, -1),
    b"PUBLISH": (publish, 3),
    b"SUBSCRIBE": (subscribe, -2),
    b"UNSUBSCRIBE": (unsubscribe, -1),
    b"CONFIG": (config, -2),
    b"HELLO": (hello, -1),
    b"CLIENT": (client, -2),
    b"SELECT": (select, 2),
    b"QUIT": (quit_, -1),
}
"""Name -> (function, arity)."""

SUBSCRIBED_ONLY = frozenset({b"SUBSCRIBE", b"UNSUBSCRIBE", b"PING", b"QUIT"})
"""What a connection with subscriptions may still send (RESP2)."""
