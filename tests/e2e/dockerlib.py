"""A Docker engine for the container tests: the machine's own when one
answers (DROVER_TEST_DOCKER_HOST, else /var/run/docker.sock), otherwise a
dockerd the suite starts for the session under a temp dir (its own socket,
data root, exec root and pid file; --bridge=none --iptables=false, so it
touches no host network). The image local/busybox:1 is made once from
busybox-static with an import (no registry: this machine has no internet).
When dockerd cannot run (no binary, not root, it dies), the container tests
are skipped with the reason.

Also: talking to the engine from the tests (its API over the unix socket,
with the standard library) to check that no container is left behind."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.parse

import pytest

IMAGE = "local/busybox:1"
API = "/v1.41"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("docker", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class Engine:
    """One Docker engine: host is what drover's --docker-host takes."""

    def __init__(self, sock):
        self.sock = sock
        self.host = "unix://" + sock

    def request(self, method, path, body=None, headers=None, timeout=30):
        c = UnixHTTPConnection(self.sock, timeout)
        try:
            c.request(method, API + path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, data
        finally:
            c.close()

    def ping(self):
        try:
            return self.request("GET", "/_ping", timeout=2)[0] == 200
        except OSError:
            return False

    def containers(self, label="drover.job"):
        """Every container (running or not) with this label (KEY or KEY=VALUE)."""
        f = urllib.parse.quote(json.dumps({"label": [label]}))
        st, data = self.request("GET", f"/containers/json?all=1&filters={f}")
        assert st == 200, data
        return json.loads(data)

    def remove(self, cid):
        self.request("DELETE", f"/containers/{cid}?force=1&v=1")

    def smoke(self):
        """None when the engine can run a container of IMAGE (create, start,
        wait, remove, straight through the API), else why not."""
        body = json.dumps({"Image": IMAGE, "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}})
        st, data = self.request("POST", "/containers/create", body=body,
                                headers={"Content-Type": "application/json"})
        if st != 201:
            return f"create: {st} {data[:300]!r}"
        cid = json.loads(data)["Id"]
        try:
            st, data = self.request("POST", f"/containers/{cid}/start")
            if st not in (204, 304):
                return f"start: {st} {data[:300]!r}"
            st, data = self.request("POST", f"/containers/{cid}/wait", timeout=120)
            if st != 200 or json.loads(data).get("StatusCode") != 0:
                return f"wait: {st} {data[:300]!r}"
        finally:
            self.remove(cid)
        return None

    def has_image(self, name):
        return self.request("GET", f"/images/{name}/json")[0] == 200

    def import_busybox(self, workdir):
        """local/busybox:1: busybox-static and a link per applet in /bin."""
        busybox = shutil.which("busybox") or "/bin/busybox"
        root = os.path.join(workdir, "rootfs")
        os.makedirs(os.path.join(root, "bin"))
        os.makedirs(os.path.join(root, "tmp"))
        os.chmod(os.path.join(root, "tmp"), 0o1777)
        shutil.copy(busybox, os.path.join(root, "bin", "busybox"))
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                                 check=True).stdout.split()
        for a in applets:
            if a != "busybox":
                os.symlink("busybox", os.path.join(root, "bin", a))
        tar = os.path.join(workdir, "rootfs.tar")
        with tarfile.open(tar, "w") as t:
            for name in sorted(os.listdir(root)):
                t.add(os.path.join(root, name), arcname=name)
        repo, tag = IMAGE.split(":")
        with open(tar, "rb") as f:
            st, data = self.request(
                "POST", f"/images/create?fromSrc=-&repo={repo}&tag={tag}", body=f.read(),
                headers={"Content-Type": "application/x-tar"}, timeout=120)
        assert st == 200 and b'"error"' not in data, data
        assert self.has_image(IMAGE)


def _start_dockerd(tmp):
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if not os.path.exists(dockerd):
        pytest.skip("no Docker engine answers and dockerd is not installed "
                    "(scripts/install-deps.sh installs docker.io)")
    if os.geteuid() != 0:
        pytest.skip("no Docker engine answers and dockerd needs root to start one")
    sock = os.path.join(tmp, "docker.sock")
    log = open(os.path.join(tmp, "dockerd.log"), "ab")
    proc = subprocess.Popen(
        [dockerd, "--iptables=false", "--ip-masq=false", "--bridge=none",
         "--data-root", os.path.join(tmp, "data"), "--exec-root", os.path.join(tmp, "exec"),
         "--pidfile", os.path.join(tmp, "docker.pid"), "-H", "unix://" + sock],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    eng = Engine(sock)
    deadline = time.monotonic() + 90
    while not eng.ping():
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            with open(os.path.join(tmp, "dockerd.log"), errors="replace") as f:
                tail = f.read()[-2000:]
            pytest.skip(f"dockerd cannot run here (exit {proc.returncode}):\n{tail}")
        time.sleep(0.1)
    return eng, proc, log


@pytest.fixture(scope="session")
def docker_engine():
    """The Engine for the session's container tests (see the top)."""
    tmp = None
    proc = None
    log = None
    given = os.environ.get("DROVER_TEST_DOCKER_HOST")
    eng = None
    if given:
        eng = Engine(given[len("unix://"):] if given.startswith("unix://") else given)
        if not eng.ping():
            pytest.fail(f"DROVER_TEST_DOCKER_HOST={given}: no Docker engine answers there")
    elif Engine("/var/run/docker.sock").ping():
        eng = Engine("/var/run/docker.sock")
    else:
        # Short paths: containerd's sockets under the exec root must fit in
        # sun_path (108 bytes).
        tmp = tempfile.mkdtemp(prefix="drover-dockerd-", dir="/tmp")
        eng, proc, log = _start_dockerd(tmp)
    try:
        if not eng.has_image(IMAGE):
            work = tempfile.mkdtemp(prefix="drover-img-")
            try:
                eng.import_busybox(work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        why = eng.smoke()
        if why:
            pytest.skip(f"the Docker engine at {eng.host} cannot run a container here: {why}")
        yield eng
    finally:
        if proc:
            for c in eng.containers():
                eng.remove(c["Id"])
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
            # The data root holds overlay layers; unmounted by dockerd on exit.
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def docker(docker_engine):
    """The engine, and after the test: no container of drover's may be left
    (then they are removed, so one failure does not spill into the next)."""
    yield docker_engine
    left = docker_engine.containers()
    for c in left:
        docker_engine.remove(c["Id"])
    assert not left, f"containers left behind: {[(c['Id'][:12], c['Labels']) for c in left]}"


class Registry:
    """A minimal read-only registry (HTTP API v2) on loopback holding one
    image, NAME:TAG, built from busybox-static: enough for the engine to
    pull it (127.0.0.0/8 is an insecure registry by default, so plain HTTP
    is fine). The suite has no internet; this is what a pull can reach."""

    def __init__(self, name="pulltest", tag="1"):
        import gzip
        import hashlib
        import http.server
        import io
        import threading

        busybox = shutil.which("busybox") or "/bin/busybox"
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as t:
            t.add(busybox, arcname="bin/busybox")
            for a in ("sh", "echo"):
                info = tarfile.TarInfo(f"bin/{a}")
                info.type = tarfile.SYMTYPE
                info.linkname = "busybox"
                t.addfile(info)
        layer = gzip.compress(raw.getvalue(), mtime=0)
        sha = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()  # noqa: E731
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers",
                                        "diff_ids": [sha(raw.getvalue())]}}).encode()
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "size": len(config), "digest": sha(config)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": len(layer), "digest": sha(layer)}]}).encode()
        blobs = {sha(config): config, sha(layer): layer}
        paths = {f"/v2/{name}/manifests/{tag}": (manifest, "application/vnd.docker."
                                                  "distribution.manifest.v2+json"),
                 f"/v2/{name}/manifests/{sha(manifest)}": (manifest, "application/vnd.docker."
                                                            "distribution.manifest.v2+json"),
                 "/v2/": (b"{}", "application/json")}
        for d, b in blobs.items():
            paths[f"/v2/{name}/blobs/{d}"] = (b, "application/octet-stream")
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def reply(self, body):
                outer.requests.append(self.path)
                hit = paths.get(self.path)
                if not hit:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, ctype = hit
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                if "/manifests/" in self.path:
                    self.send_header("Docker-Content-Digest", sha(manifest))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_GET(self):
                self.reply(True)

            def do_HEAD(self):
                self.reply(False)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.image = f"127.0.0.1:{self.server.server_address[1]}/{name}:{tag}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry(docker_engine):
    r = Registry()
    yield r
    r.close()
    docker_engine.request("DELETE", f"/images/{r.image}?force=1")
