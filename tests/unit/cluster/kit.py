"""Several actor systems ("nodes") in one event loop, joined by an in-memory transport that
behaves like Redis pub/sub: ordered per sender, at most once, and telling the sender how
many listeners received a payload (0 once a node is gone). No I/O."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import msgspec

from actors.actor import Actor, ActorContext
from actors.clock import ManualClock
from actors.errors import Rejected
from actors.remote import RemoteRouter
from actors.rendezvous import RendezvousPlacement, View
from actors.system import ActorSystem
from protocols.actor_messages import MessageRegistry
from protocols.cluster import Activate


class Add(msgspec.Struct, frozen=True):
    amount: int


class Get(msgspec.Struct, frozen=True):
    pass


class Refuse(msgspec.Struct, frozen=True):
    code: str


class Boom(msgspec.Struct, frozen=True):
    pass


class Stall(msgspec.Struct, frozen=True):
    """Wait until the test opens the gate named `gate` (never answered otherwise)."""

    gate: str


class Arm(msgspec.Struct, frozen=True):
    """Keep a timer pending (an actor with timers must stay alive somewhere)."""


class Tick(msgspec.Struct, frozen=True):
    pass


class Value(msgspec.Struct, frozen=True):
    node: str  # where the actor that answered lives
    total: int
    seen: list[int]


REGISTRY_TYPES = (Add, Get, Refuse, Boom, Stall, Arm, Activate, Value)


@dataclass
class Storage:
    """What a real port persists: per key, the total and the amounts added, in order."""

    totals: dict[str, int] = field(default_factory=dict)
    seen: dict[str, list[int]] = field(default_factory=dict)
    armed: set[str] = field(default_factory=set)
    starts: list[tuple[str, str]] = field(default_factory=list)  # (node, key)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())


class Counter(Actor):
    """Writes through to Storage on every Add, as a real actor writes durably."""

    def __init__(self, key: str, context: ActorContext, node: str, storage: Storage) -> None:
        super().__init__(key, context)
        self.node = node
        self.storage = storage

    async def on_start(self) -> None:
        self.storage.starts.append((self.node, self.key))
        if self.key in self.storage.armed:
            self.context.schedule(3600, Tick())

    async def receive(self, message: Any) -> Any:
        match message:
            case Add(amount=amount):
                self.storage.totals[self.key] = self.storage.totals.get(self.key, 0) + amount
                self.storage.seen.setdefault(self.key, []).append(amount)
            case Get():
                return Value(node=self.node, total=self.storage.totals.get(self.key, 0),
                             seen=list(self.storage.seen.get(self.key, [])))
            case Refuse(code=code):
                raise Rejected(code, "refused")
            case Boom():
                raise RuntimeError("boom")
            case Stall(gate=gate):
                await self.storage.gate(gate).wait()
            case Arm():
                self.storage.armed.add(self.key)
                self.context.schedule(3600, Tick())
            case Tick():
                pass
        return None


class Network:
    """The in-memory pub/sub: node id -> router while that node listens."""

    def __init__(self) -> None:
        self.listening: dict[str, RemoteRouter] = {}
        # Nodes whose sends fail (their connection to the pub/sub broke).
        self.broken: set[str] = set()

    def transport(self, node: str) -> MemoryTransport:
        return MemoryTransport(self, node)


class MemoryTransport:
    def __init__(self, network: Network, node: str) -> None:
        self._network = network
        self._node = node

    def send(self, node: str, payload: bytes) -> asyncio.Future[int]:
        loop = asyncio.get_running_loop()
        sent: asyncio.Future[int] = loop.create_future()
        router = self._network.listening.get(node)
        if self._node in self._network.broken:
            sent.set_exception(ConnectionError("the transport's connection broke"))
        elif router is None:
            sent.set_result(0)
        else:
            loop.call_soon(router.received, payload)  # later, in send order
            sent.set_result(1)
        return sent

    def broadcast(self, payload: bytes) -> asyncio.Future[int]:
        loop = asyncio.get_running_loop()
        routers = list(self._network.listening.values())
        for router in routers:
            loop.call_soon(router.received, payload)
        sent: asyncio.Future[int] = loop.create_future()
        sent.set_result(len(routers))
        return sent


@dataclass
class Node:
    id: str
    system: ActorSystem
    placement: RendezvousPlacement
    router: RemoteRouter

    def ref(self, key: str) -> Any:
        return self.system.ref(Counter, key)

    def live(self) -> set[str]:
        return {key for (_, key) in self.system._live}


class Cluster:
    """Nodes sharing a Network and a Storage; `view(...)` installs a view on every node."""

    def __init__(self, *node_ids: str) -> None:
        self.network = Network()
        self.storage = Storage()
        self.clock = ManualClock()
        self.registry = MessageRegistry(REGISTRY_TYPES)
        self.version = 0
        self.nodes = {node_id: self._node(node_id) for node_id in node_ids}
        self.view(*node_ids)

    def _node(self, node_id: str) -> Node:
        placement = RendezvousPlacement(node_id)
        router = RemoteRouter(node_id, self.registry, lambda: placement.view.version)
        system = ActorSystem(clock=self.clock, placement=placement, remote=router)
        system.register(Counter, lambda key, ctx: Counter(key, ctx, node_id, self.storage))
        router.bind(self.network.transport(node_id), system)
        router.on_undelivered = system.undelivered
        self.network.listening[node_id] = router
        return Node(node_id, system, placement, router)

    def view(self, *node_ids: str, on: tuple[str, ...] | None = None) -> None:
        """Install a view of `node_ids` on the nodes `on` (default: every listening node)."""
        self.version += 1
        view = View.of(self.version, node_ids)
        for node_id in on or tuple(self.network.listening):
            node = self.nodes[node_id]
            if node.placement.update(view):
                node.system.view_changed()

    def kill(self, node_id: str) -> None:
        """The node stops listening, as a killed process's subscription vanishes."""
        self.network.listening.pop(node_id, None)

    def key_on(self, node_id: str, prefix: str = "k") -> str:
        """A key the current view places on `node_id`."""
        placement = self.nodes[node_id].placement
        return next(f"{prefix}{i}" for i in range(10_000)
                    if placement.node_for("Counter", f"{prefix}{i}") == node_id)

    async def stop(self) -> None:
        for node in self.nodes.values():
            await node.system.stop(timeout=1)
