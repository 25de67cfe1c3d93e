"""Helpers for the tests of the networked agent (test_agent_*.py): a real
`drover server`, real `drover agent --coordinator` processes and the CLI, on
top of cluster.py."""
import json
import subprocess

from cluster import DROVER, SANITIZER, clean_env, wait_for


# The machine is shared (other builds, other tests): a node that says it is
# busy because of them gets no jobs, so tests ask for busy at 100% CPU only
# (never), unless they test busy themselves.
NOT_BUSY = ("--busy-cpu", "100")


def agent(cluster, srv, name="a1", *args, addr=None, token=None, slots=2, state=None,
          connected=True):
    """Starts `drover agent --coordinator` (through addr, e.g. a proxy, when
    given) and waits until it is welcomed."""
    tok = token or cluster.token(srv.addr)
    a = cluster.agent(addr or srv.addr, tok, name, *NOT_BUSY, *args, state=state, slots=slots)
    if connected:
        a.wait_log(r"connected to the coordinator")
    return a


def restart_agent(cluster, srv, old, *args, addr=None, slots=2):
    """The same agent again, on its state dir, without a token: its identity
    is kept there."""
    name = old.args[old.args.index("--name") + 1]
    p = cluster.start(["agent", "--coordinator", addr or srv.addr, "--name", name,
                       "--state-dir", str(old.state), "--slots", str(slots),
                       "--log-level", "debug", *NOT_BUSY, *args], f"agent-{name}")
    p.state = old.state
    return p


def cli(srv, *args, input=None, timeout=120):
    """`drover <args>` with --addr; returns (exit code, stdout bytes, stderr text)."""
    full = [DROVER, *args[:2], "--addr", srv.addr, *args[2:]]
    r = subprocess.run(full, capture_output=True, timeout=timeout, input=input, env=clean_env())
    err = r.stderr.decode(errors="replace")
    assert not SANITIZER.search(err), err
    return r.returncode, r.stdout, err


def submit(srv, *args):
    rc, out, err = cli(srv, "job", "submit", *args)
    assert rc == 0, err
    return out.decode().strip()


def status(srv, jid):
    rc, out, err = cli(srv, "job", "status", jid, "--json")
    assert rc == 0, err
    return json.loads(out)


def events(srv, jid):
    rc, out, err = cli(srv, "job", "events", jid, "--json")
    assert rc == 0, err
    return json.loads(out)


def nodes(srv):
    rc, out, err = cli(srv, "node", "list", "--json")
    assert rc == 0, err
    return {n["name"]: n for n in json.loads(out)}


def logs(srv, jid, *args):
    """What the store has of the job's output: (stdout bytes, stderr bytes)."""
    full = [DROVER, "job", "logs", "--addr", srv.addr, jid, *args]
    r = subprocess.run(full, capture_output=True, timeout=120, env=clean_env())
    assert r.returncode == 0, r.stderr
    return r.stdout, r.stderr


def wait_state(srv, jid, states, timeout=60):
    states = {states} if isinstance(states, str) else set(states)
    return wait_for(lambda: (lambda s: s if s["state"] in states else None)(status(srv, jid)),
                    timeout, f"job {jid} to be {'/'.join(sorted(states))}", interval=0.05)


def wait_node(srv, name, pred, timeout=60, what="node state"):
    return wait_for(lambda: (lambda n: n if n and pred(n) else None)(nodes(srv).get(name)),
                    timeout, what, interval=0.05)


def terminal_events(evs):
    ends = {"succeeded", "failed", "timed_out", "cancelled", "lost"}
    return [e for e in evs if e["to"] in ends]


def numbered(prefix, lo, hi):
    return b"".join(f"{prefix}{i}\n".encode() for i in range(lo, hi + 1))
