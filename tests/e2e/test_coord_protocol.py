"""The coordinator against a scripted agent (grpcio): registration, dispatch, logs,
results, epochs and stale copies, message by message (docs/protocol.md)."""
import grpc
import pytest

from fakeagent import FakeAgent



@pytest.fixture
def srv(cluster):
    return cluster.server(node_timeout="3s")


@pytest.fixture
def api(srv, pb):
    ch = grpc.insecure_channel(srv.addr)
    yield type("Api", (), dict(
        jobs=pb.jobs_grpc.JobServiceStub(ch), nodes=pb.agent_grpc.NodeServiceStub(ch),
        tokens=pb.agent_grpc.TokenServiceStub(ch)))
    ch.close()


def token(api, pb, uses=1):
    return api.tokens.Create(pb.agent.CreateTokenRequest(uses=uses)).token


def submit(api, pb, **spec):
    spec.setdefault("command", "echo hi")
    return api.jobs.Submit(pb.jobs.SubmitRequest(spec=pb.jobs.JobSpec(**spec))).job


def connect(pb, srv, tok, **kw):
    a = FakeAgent(pb, srv.addr, token=tok, **kw)
    w = a.recv("welcome")
    assert w.node_id and w.node_secret
    return a, w


def batch(pb, job_id, attempt, seq, *lines, stream=1):
    return pb.agent.LogBatch(job_id=job_id, attempt=attempt, seq=seq, entries=[
        pb.jobs.LogEntry(stream=stream, ts_us=1, data=l.encode()) for l in lines])


def finish(pb, job_id, attempt, state=5, exit_code=0, last_seq=0):
    return pb.agent.JobFinished(job_id=job_id, attempt=attempt, result=pb.jobs.JobResult(
        state=state, exit_code=exit_code, last_log_seq=last_seq))


def test_coord_bad_token_is_refused(srv, pb, api):
    a = FakeAgent(pb, srv.addr, token="drv1_nope")
    assert a.ended() == grpc.StatusCode.UNAUTHENTICATED
    assert "token create" in a.error.details()
    a.close()


def test_coord_first_message_must_be_register(srv, pb):
    a = FakeAgent(pb, srv.addr)
    a.send(heartbeat=pb.agent.Heartbeat(cpu_percent=1))
    assert a.ended() == grpc.StatusCode.FAILED_PRECONDITION
    a.close()


def test_coord_token_is_single_use(srv, pb, api):
    tok = token(api, pb)
    a, _ = connect(pb, srv, tok)
    b = FakeAgent(pb, srv.addr, token=tok)
    assert b.ended() == grpc.StatusCode.UNAUTHENTICATED
    a.close()
    b.close()


def test_coord_runs_a_job_end_to_end(srv, pb, api):
    a, w = connect(pb, srv, token(api, pb), slots=1)
    job = submit(api, pb, name="one")
    # A free node takes it in the same group commit as its submission.
    assert job.state in (pb.jobs.JOB_STATE_QUEUED, pb.jobs.JOB_STATE_ASSIGNED)
    run = a.recv("run_job")
    assert run.job.spec.id == job.spec.id and run.attempt == 1
    a.send(job_started=pb.agent.JobStarted(job_id=job.spec.id, attempt=1, pid=42))
    a.send(log_batch=batch(pb, job.spec.id, 1, 1, "hello", "world"))
    ack = a.recv("ack")
    assert ack.log_seq == 1 and not ack.result
    a.send(job_finished=finish(pb, job.spec.id, 1, last_seq=1))
    ack = a.recv("ack")
    assert ack.result
    done = api.jobs.Wait(pb.jobs.WaitRequest(id=job.spec.id), timeout=20)
    assert done.state == pb.jobs.JOB_STATE_SUCCEEDED and done.attempt == 1
    logs = list(api.jobs.Logs(pb.jobs.LogsRequest(id=job.spec.id)))
    assert [e.data for r in logs for e in r.entries] == [b"hello", b"world"]
    ev = api.jobs.Events(pb.jobs.EventsRequest(id=job.spec.id)).events
    assert [(e.to) for e in ev] == [pb.jobs.JOB_STATE_QUEUED, pb.jobs.JOB_STATE_ASSIGNED,
                                    pb.jobs.JOB_STATE_RUNNING, pb.jobs.JOB_STATE_SUCCEEDED]
    assert all(e.node_id == w.node_id for e in ev[1:])
    a.close()


def test_coord_duplicate_batches_are_stored_once(srv, pb, api):
    a, _ = connect(pb, srv, token(api, pb))
    job = submit(api, pb)
    a.recv("run_job")
    for seq in (1, 2, 1, 2, 3):
        a.send(log_batch=batch(pb, job.spec.id, 1, seq, f"line {seq}"))
    a.send(job_finished=finish(pb, job.spec.id, 1, last_seq=3))
    api.jobs.Wait(pb.jobs.WaitRequest(id=job.spec.id), timeout=20)
    logs = list(api.jobs.Logs(pb.jobs.LogsRequest(id=job.spec.id)))
    assert [e.data for r in logs for e in r.entries] == [b"line 1", b"line 2", b"line 3"]
    a.close()


def test_coord_finish_before_logs_is_refused(srv, pb, api):
    a, _ = connect(pb, srv, token(api, pb))
    job = submit(api, pb)
    a.recv("run_job")
    a.send(job_finished=finish(pb, job.spec.id, 1, last_seq=2))
    assert a.ended() == grpc.StatusCode.INTERNAL
    a.close()
    got = api.jobs.Get(pb.jobs.GetJobRequest(id=job.spec.id))
    assert got.state == pb.jobs.JOB_STATE_ASSIGNED


def test_coord_lost_node_requeues_and_stale_copy_is_ignored(srv, pb, api):
    a, wa = connect(pb, srv, token(api, pb), name="first")
    job = submit(api, pb, max_attempts=2)
    a.recv("run_job")
    a.send(job_started=pb.agent.JobStarted(job_id=job.spec.id, attempt=1))
    # The first agent goes silent: lost after the 3 s node timeout, job requeued.
    b, _ = connect(pb, srv, token(api, pb), name="second")
    b.beat()
    run2 = b.recv("run_job", timeout=30)
    assert run2.attempt == 2
    # The first agent comes back with its stale copy: told to stop it.
    a2 = FakeAgent(pb, srv.addr, node_id=wa.node_id, node_secret=wa.node_secret, name="first",
                   jobs=[dict(job_id=job.spec.id, attempt=1, log_seq=0, finished=True)])
    w2 = a2.recv("welcome")
    assert w2.jobs[0].stop
    # Its late result is ignored; attempt 2's counts.
    a2.send(job_finished=finish(pb, job.spec.id, 1, state=6, exit_code=9))
    b.send(job_finished=finish(pb, job.spec.id, 2))
    done = api.jobs.Wait(pb.jobs.WaitRequest(id=job.spec.id), timeout=20)
    assert done.state == pb.jobs.JOB_STATE_SUCCEEDED and done.attempt == 2
    for x in (a, a2, b):
        x.close()


def test_coord_lost_with_one_attempt_ends_lost(srv, pb, api):
    a, _ = connect(pb, srv, token(api, pb))
    job = submit(api, pb)
    a.recv("run_job")
    done = api.jobs.Wait(pb.jobs.WaitRequest(id=job.spec.id), timeout=30)
    assert done.state == pb.jobs.JOB_STATE_LOST
    assert "lost" in done.result.error
    a.close()


def test_coord_idempotency_key_dedupes(srv, pb, api):
    j1 = submit(api, pb, idempotency_key="k1")
    r2 = api.jobs.Submit(pb.jobs.SubmitRequest(spec=pb.jobs.JobSpec(command="x",
                                                                    idempotency_key="k1")))
    assert r2.deduplicated and r2.job.spec.id == j1.spec.id


def test_coord_rejects_what_it_cannot_honour(srv, pb, api):
    for spec, word in [
        (dict(command="x", resources=pb.jobs.Resources(cpu=0.001)), "resources.cpus"),
        (dict(command="x", isolation=pb.jobs.Isolation(network="nonee")), "isolation.network"),
        (dict(kind=pb.jobs.JOB_KIND_CONTAINER, command="x"), "container"),
        (dict(kind=pb.jobs.JOB_KIND_EXEC), "argv"),
        (dict(command="x", env=[pb.jobs.EnvVar(name="A", value="b", secret=True)]), "secret"),
    ]:
        with pytest.raises(grpc.RpcError) as e:
            api.jobs.Submit(pb.jobs.SubmitRequest(spec=pb.jobs.JobSpec(**spec)))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert word in e.value.details()


def test_coord_cancel_queued_and_running(srv, pb, api):
    queued = submit(api, pb)
    r = api.jobs.Cancel(pb.jobs.CancelJobRequest(id=queued.spec.id))
    assert r.job.state == pb.jobs.JOB_STATE_CANCELLED
    a, _ = connect(pb, srv, token(api, pb))
    job = submit(api, pb)
    a.recv("run_job")
    api.jobs.Cancel(pb.jobs.CancelJobRequest(id=job.spec.id, grace_ms=5))
    cj = a.recv("cancel_job")
    assert cj.job_id == job.spec.id and cj.grace_ms == 5
    a.send(job_finished=finish(pb, job.spec.id, 1, state=8))
    done = api.jobs.Wait(pb.jobs.WaitRequest(id=job.spec.id), timeout=20)
    assert done.state == pb.jobs.JOB_STATE_CANCELLED
    a.close()


def test_coord_constraints_pick_the_node(srv, pb, api):
    a, _ = connect(pb, srv, token(api, pb), name="gpu", labels={"gpu": "yes"}, slots=4)
    b, _ = connect(pb, srv, token(api, pb), name="cpu", labels={"gpu": "no"}, slots=4)
    a.beat()
    b.beat()
    for _ in range(3):
        submit(api, pb, constraints={"gpu": "yes"})
    for _ in range(3):
        assert a.recv("run_job").job.spec.constraints["gpu"] == "yes"
    b.nothing("run_job")
    a.close()
    b.close()


def test_coord_malformed_message_gets_a_status(srv, pb):
    ch = grpc.insecure_channel(srv.addr)
    call = ch.stream_stream("/drover.v1.AgentService/Connect",
                            request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        list(call(iter([b"\xff\xff\xff\xff\x0f garbage"])))
    assert e.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL)
    ch.close()
