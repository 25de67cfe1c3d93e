"""fetch_url and web_search against servers of the test on loopback: a plain
HTTP server, and a fake SearXNG JSON endpoint (docs/tools.md)."""
import http.server
import json
import subprocess
import threading
import urllib.parse

import pytest

from cluster import SANITIZER, clean_env


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        self.server.seen.append(self.path)
        if u.path == "/hello":
            body = b"hello from the test\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("X-Test", "yes")
        elif u.path == "/big":
            body = b"x" * 100000
            self.send_response(200)
        elif u.path == "/slow":
            self.server.release.wait(60)  # until the test is over
            body = b"late"
            self.send_response(200)
        elif u.path == "/redirect":
            body = b""
            self.send_response(302)
            self.send_header("Location", "http://example.invalid/")
        elif u.path == "/search" and q.get("format") == ["json"]:
            query = q["q"][0]
            body = json.dumps({"query": query, "results": [
                {"title": f"result {i} for {query}", "url": f"http://r{i}.test/",
                 "content": f"snippet {i}", "engine": "fake", "score": 1.0}
                for i in range(15)]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        else:
            body = b"not found"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.seen = []
    srv.release = threading.Event()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    t.join(timeout=10)


def url(server, path):
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def tool(drover, name, args, *policy, expect=None, doc=True):
    r = subprocess.run([drover, "run", *policy, "--tool", name, "--args", json.dumps(args)],
                       capture_output=True, text=True, timeout=60, env=clean_env())
    assert not SANITIZER.search(r.stderr), r.stderr
    if not doc:
        assert r.returncode == expect, (r.returncode, r.stdout, r.stderr)
        return r
    doc = json.loads(r.stdout)
    if expect is not None:
        assert r.returncode == expect, (r.returncode, doc, r.stderr)
    return doc


def test_tools_fetch_url_refused_without_fetch_allow(drover, server):
    doc = tool(drover, "fetch_url", {"url": url(server, "/hello")}, expect=126)
    assert doc["rule"] == "fetch-allow" and "127.0.0.1" in doc["error"]
    doc = tool(drover, "fetch_url", {"url": url(server, "/hello")}, "--fetch-allow", "localhost",
               expect=126)
    assert doc["rule"] == "fetch-allow"
    assert server.seen == [], "a refused fetch must not reach the server"


def test_tools_fetch_url_allowed(drover, server):
    doc = tool(drover, "fetch_url", {"url": url(server, "/hello")}, "--fetch-allow", "127.0.0.1",
               expect=0)
    assert doc["status"] == 200
    assert doc["body"] == "hello from the test\n"
    assert doc["headers"]["x-test"] == "yes"
    assert doc["headers"]["content-type"] == "text/plain"
    assert doc["truncated"] is False
    doc = tool(drover, "fetch_url", {"url": url(server, "/nope")}, "--fetch-allow", "127.0.0.1",
               expect=0)
    assert doc["status"] == 404


def test_tools_fetch_url_bounds_and_redirects(drover, server):
    doc = tool(drover, "fetch_url", {"url": url(server, "/big"), "max_bytes": 1000},
               "--fetch-allow", "127.0.0.1", expect=0)
    assert doc["body"] == "x" * 1000 and doc["truncated"] is True
    # the policy's bound wins over a larger max_bytes
    doc = tool(drover, "fetch_url", {"url": url(server, "/big"), "max_bytes": 10 ** 9},
               "--fetch-allow", "127.0.0.1", "--tool-max-bytes", "2K", expect=0)
    assert len(doc["body"]) == 2048 and doc["truncated"] is True
    # a redirect is returned, not followed (its host may not be allowed)
    doc = tool(drover, "fetch_url", {"url": url(server, "/redirect")}, "--fetch-allow",
               "127.0.0.1", expect=0)
    assert doc["status"] == 302 and doc["headers"]["location"] == "http://example.invalid/"
    doc = tool(drover, "fetch_url", {"url": "file:///etc/passwd"}, "--fetch-allow", "127.0.0.1",
               expect=126)
    assert doc["rule"] == "fetch-allow" and "root:" not in json.dumps(doc)


def test_tools_fetch_url_network_error_is_a_tool_failure(drover, server):
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    doc = tool(drover, "fetch_url", {"url": f"http://127.0.0.1:{port}/"}, "--fetch-allow",
               "127.0.0.1", expect=1)
    assert "fetch failed" in doc["error"]


def test_tools_web_search_without_search_url_says_so(drover):
    doc = tool(drover, "web_search", {"query": "drover"}, expect=126)
    assert doc["rule"] == "search-url" and "--search-url" in doc["error"]


def test_tools_web_search_against_a_searxng_endpoint(drover, server):
    doc = tool(drover, "web_search", {"query": "job platform & C"}, "--search-url",
               url(server, "/search"), expect=0)
    assert doc["query"] == "job platform & C"
    assert len(doc["results"]) == 10
    assert doc["results"][0] == {"title": "result 0 for job platform & C",
                                 "url": "http://r0.test/", "content": "snippet 0",
                                 "engine": "fake"}
    doc = tool(drover, "web_search", {"query": "x", "max_results": 3}, "--search-url",
               url(server, "/search"), expect=0)
    assert len(doc["results"]) == 3
    # not a SearXNG answer
    doc = tool(drover, "web_search", {"query": "x"}, "--search-url", url(server, "/hello"),
               expect=1)
    assert "SearXNG" in doc["error"]


def test_tools_job_timeout_applies_to_a_tool(drover, server):
    # A tool job is a job: its --timeout stops it (TERM, grace, KILL), exit 124.
    r = tool(drover, "fetch_url", {"url": url(server, "/slow")}, "--fetch-allow", "127.0.0.1",
             "--timeout", "500ms", "--kill-grace", "1s", expect=124, doc=False)
    assert r.stdout == ""
