"""A scripted agent on grpcio: speaks drover.v1.AgentService/Connect from the
test, so coordinator behaviour (epochs, stale reports, gaps, bad tokens) can be
driven message by message, and so that the protocol is checked against an
implementation that is not drover's own."""
import queue
import threading

import grpc


class FakeAgent:
    def __init__(self, pb, addr, **register):
        self.pb = pb
        self.channel = grpc.insecure_channel(addr)
        self.stub = pb.agent_grpc.AgentServiceStub(self.channel)
        self.out = queue.Queue()
        self.inbox = queue.Queue()
        self.error = None
        self.done = threading.Event()
        self.call = self.stub.Connect(iter(self.out.get, None))
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        if register:
            self.register(**register)

    def _read(self):
        try:
            for m in self.call:
                self.inbox.put(m)
        except grpc.RpcError as e:
            self.error = e
        finally:
            self.done.set()

    def send(self, **kw):
        self.out.put(self.pb.agent.AgentMessage(**kw))

    def register(self, token="", node_id="", node_secret="", name="fake", labels=None, slots=1,
                 capabilities=(), jobs=(), stopped=()):
        a = self.pb.agent
        self.send(register=a.Register(
            token=token, node_id=node_id, node_secret=node_secret, name=name,
            labels=labels or {}, slots=slots, capabilities=list(capabilities), version="fake",
            jobs=[a.HeldJob(**j) for j in jobs], stopped=[a.HeldJob(**j) for j in stopped]))

    def beat(self, every=0.3):
        """Heartbeats from a thread until close(): a live node. Without it the
        agent is silent, and the coordinator loses it after its node timeout."""
        def run():
            while not self.done.wait(every):
                self.send(heartbeat=self.pb.agent.Heartbeat(cpu_percent=1.0))
        threading.Thread(target=run, daemon=True).start()
        return self

    def recv(self, kind=None, timeout=20):
        """The next message (of oneof `kind` when given, skipping others)."""
        while True:
            try:
                m = self.inbox.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {kind or 'message'} from the coordinator in {timeout}s"
                                     f" (stream error: {self.error})")
            which = m.WhichOneof("msg")
            if kind is None or which == kind:
                return getattr(m, which)

    def nothing(self, kind, within=0.5):
        """Asserts no message of `kind` arrives within `within` seconds."""
        try:
            while True:
                m = self.inbox.get(timeout=within)
                if m.WhichOneof("msg") == kind:
                    raise AssertionError(f"unexpected {kind}: {m}")
        except queue.Empty:
            pass

    def ended(self, timeout=20):
        """Waits for the stream to end; returns the grpc status code (OK: None)."""
        assert self.done.wait(timeout), "the coordinator did not end the stream"
        return self.error.code() if self.error else None

    def close(self):
        self.out.put(None)
        self.done.wait(10)
        self.channel.close()
