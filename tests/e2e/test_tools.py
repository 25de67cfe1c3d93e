"""Tool jobs through `drover run --tool NAME --args JSON`: every tool's happy
path, and every way out of the roots refused with exit 126, the rule named,
and nothing outside read or written. docs/tools.md is the contract."""
import base64
import json
import os
import pathlib
import subprocess

import pytest

from cluster import SANITIZER, clean_env

SECRET = "top secret\n"


@pytest.fixture
def tree(tmp_path):
    """root/ (read root), root/w/ (write root), outside/ (never reachable)."""
    root = tmp_path / "root"
    (root / "src" / "deep").mkdir(parents=True)
    (root / "w").mkdir()
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret").write_text(SECRET)
    (root / "a.txt").write_text("alpha\nbeta\ngamma\n")
    (root / "src" / "main.c").write_text("int main(void)\n{\n  return 0; // TODO\n}\n")
    (root / "src" / "deep" / "util.c").write_text("/* TODO: more */\nint x;\n")
    (root / "src" / "notes.md").write_text("TODO in markdown\n")
    (root / "src" / "blob.bin").write_bytes(b"TODO\x00\x01binary")
    (root / "latin1.txt").write_bytes(b"caf\xe9\n")
    (root / "w" / "edit.txt").write_text("one two two three\n")
    os.symlink(out / "secret", root / "link_abs")
    os.symlink("../outside/secret", root / "link_rel")
    os.symlink(str(out), root / "dir_out")
    os.symlink("loop", root / "loop")
    os.symlink("a.txt", root / "link_in")
    os.mkfifo(root / "fifo")
    with open(root / "big.bin", "wb") as f:
        f.truncate(3 << 20)  # sparse: 3 MiB, past the 1M limit below
    return tmp_path


def policy(tree, *extra):
    return ["--tool-root", str(tree / "root"), "--tool-write-root", str(tree / "root" / "w"),
            "--tool-max-bytes", "1M", *extra]


def tool(drover, tree, name, args, *extra, env=None, expect=None, cwd=None):
    """Runs the tool; returns (exit code, the JSON document on stdout, stderr)."""
    cmd = [drover, "run", *policy(tree, *extra), "--tool", name]
    text = json.dumps(args)
    if len(text) > 64 << 10:   # past what one argv word may hold: from a file
        path = tree / "args.json"
        path.write_text(text)
        cmd += ["--args", f"@{path}"]
    else:
        cmd += ["--args", text]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=clean_env(env),
                       cwd=cwd or tree)
    assert not SANITIZER.search(r.stderr), r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1, f"one JSON document expected on stdout, got {r.stdout!r} ({r.stderr})"
    doc = json.loads(lines[0])
    if expect is not None:
        assert r.returncode == expect, (r.returncode, doc, r.stderr)
    return r.returncode, doc, r.stderr


# ---- happy paths ------------------------------------------------------------

def test_tools_file_read(drover, tree):
    _, doc, _ = tool(drover, tree, "file_read", {"path": "a.txt"}, expect=0)
    assert doc == {"content": "alpha\nbeta\ngamma\n", "size": 17, "truncated": False}
    _, doc, _ = tool(drover, tree, "file_read", {"path": "a.txt", "offset": 6, "limit": 4},
                     expect=0)
    assert doc == {"content": "beta", "size": 17, "truncated": True}
    # an absolute path beneath the root, and a link that stays inside it
    _, doc, _ = tool(drover, tree, "file_read", {"path": str(tree / "root" / "src" / "main.c")},
                     expect=0)
    assert doc["content"].startswith("int main")
    _, doc, _ = tool(drover, tree, "file_read", {"path": "link_in"}, expect=0)
    assert doc["content"] == "alpha\nbeta\ngamma\n"


def test_tools_file_read_bytes_that_are_not_utf8_come_as_base64(drover, tree):
    _, doc, _ = tool(drover, tree, "file_read", {"path": "latin1.txt"}, expect=0)
    assert doc["encoding"] == "base64"
    assert base64.b64decode(doc["content"]) == b"caf\xe9\n"


def test_tools_file_read_errors_are_json_too(drover, tree):
    code, doc, err = tool(drover, tree, "file_read", {"path": "nope.txt"}, expect=1)
    assert "nope.txt" in doc["error"] and "No such file" in doc["error"]
    assert "rule" not in doc
    assert "error: file_read: path 'nope.txt'" in err
    code, doc, err = tool(drover, tree, "file_read", {"paht": "a.txt"}, expect=2)
    assert "unknown argument \"paht\"" in doc["error"]
    code, doc, err = tool(drover, tree, "file_read", {}, expect=2)
    assert "\"path\" is required" in doc["error"]


def test_tools_file_write_creates_parents_and_appends(drover, tree):
    _, doc, _ = tool(drover, tree, "file_write", {"path": "w/new/dir/f.txt", "content": "héllo\n"},
                     expect=0)
    assert doc == {"bytes": 7}
    f = tree / "root" / "w" / "new" / "dir" / "f.txt"
    assert f.read_text() == "héllo\n"
    tool(drover, tree, "file_write", {"path": "w/new/dir/f.txt", "content": "more\n",
                                      "append": True}, expect=0)
    assert f.read_text() == "héllo\nmore\n"
    tool(drover, tree, "file_write", {"path": "w/new/dir/f.txt", "content": "x"}, expect=0)
    assert f.read_text() == "x"


def test_tools_file_write_larger_than_an_argv_word(drover, tree):
    # 300 KiB: more than one argv string may hold (128 KiB): args go by stdin
    content = "z" * (300 << 10)
    _, doc, _ = tool(drover, tree, "file_write", {"path": "w/big.txt", "content": content},
                     expect=0)
    assert doc == {"bytes": len(content)}
    assert (tree / "root" / "w" / "big.txt").read_text() == content


def test_tools_file_edit(drover, tree):
    f = tree / "root" / "w" / "edit.txt"
    _, doc, _ = tool(drover, tree, "file_edit", {"path": "w/edit.txt", "old": "one",
                                                 "new": "1"}, expect=0)
    assert doc == {"replacements": 1}
    assert f.read_text() == "1 two two three\n"
    _, doc, _ = tool(drover, tree, "file_edit", {"path": "w/edit.txt", "old": "two",
                                                 "new": "2"}, expect=1)
    assert "found 2 times" in doc["error"] and "replace_all" in doc["error"]
    assert f.read_text() == "1 two two three\n"
    _, doc, _ = tool(drover, tree, "file_edit", {"path": "w/edit.txt", "old": "four",
                                                 "new": "4"}, expect=1)
    assert "was not found" in doc["error"]
    _, doc, _ = tool(drover, tree, "file_edit", {"path": "w/edit.txt", "old": "two",
                                                 "new": "2", "replace_all": True}, expect=0)
    assert doc == {"replacements": 2}
    assert f.read_text() == "1 2 2 three\n"


def test_tools_list(drover, tree):
    _, doc, _ = tool(drover, tree, "list", {"path": "src"}, expect=0)
    assert doc["truncated"] is False
    assert [(e["name"], e["type"]) for e in doc["entries"]] == [
        ("blob.bin", "file"), ("deep", "dir"), ("main.c", "file"), ("notes.md", "file")]
    assert doc["entries"][2]["size"] == len("int main(void)\n{\n  return 0; // TODO\n}\n")
    _, doc, _ = tool(drover, tree, "list", {}, expect=0)
    types = {e["name"]: e["type"] for e in doc["entries"]}
    assert types["link_abs"] == "symlink" and types["fifo"] == "fifo" and types["w"] == "dir"


def test_tools_find(drover, tree):
    _, doc, _ = tool(drover, tree, "find", {"path": "src", "name": "*.c"}, expect=0)
    assert doc == {"paths": ["src/deep/util.c", "src/main.c"], "truncated": False}
    _, doc, _ = tool(drover, tree, "find", {"name": "*.md"}, expect=0)
    assert doc["paths"] == ["src/notes.md"]
    # links are listed by name, never entered: nothing of outside/ shows
    _, doc, _ = tool(drover, tree, "find", {"name": "secret"}, expect=0)
    assert doc["paths"] == []


def test_tools_grep(drover, tree):
    _, doc, _ = tool(drover, tree, "grep", {"pattern": "TODO", "path": "src"}, expect=0)
    assert doc["matches"] == [
        {"path": "src/deep/util.c", "line": 1, "text": "/* TODO: more */"},
        {"path": "src/main.c", "line": 3, "text": "  return 0; // TODO"},
        {"path": "src/notes.md", "line": 1, "text": "TODO in markdown"},
    ]
    assert doc["binary_skipped"] == 1 and doc["truncated"] is False
    _, doc, _ = tool(drover, tree, "grep", {"pattern": "TODO", "path": "src", "glob": "*.c"},
                     expect=0)
    assert [m["path"] for m in doc["matches"]] == ["src/deep/util.c", "src/main.c"]
    # PCRE2: \d, anchors at line ends, and a match across lines is not one
    _, doc, _ = tool(drover, tree, "grep", {"pattern": r"^(be|ga)\w+a$", "path": "a.txt"},
                     expect=0)
    assert [(m["line"], m["text"]) for m in doc["matches"]] == [(2, "beta"), (3, "gamma")]
    _, doc, _ = tool(drover, tree, "grep", {"pattern": r"alpha\sbeta", "path": "a.txt"},
                     expect=0)
    assert doc["matches"] == []
    _, doc, _ = tool(drover, tree, "grep", {"pattern": "(", "path": "a.txt"}, expect=2)
    assert "pattern" in doc["error"]


def test_tools_enabled_subset_and_unknown_tool(drover, tree):
    _, doc, _ = tool(drover, tree, "file_write", {"path": "w/x", "content": "x"},
                     "--tools", "file_read,grep", expect=126)
    assert doc["rule"] == "tools"
    assert not (tree / "root" / "w" / "x").exists()
    tool(drover, tree, "file_read", {"path": "a.txt"}, "--tools", "file_read,grep", expect=0)
    _, doc, _ = tool(drover, tree, "file_nuke", {}, expect=2)
    assert "unknown tool" in doc["error"]


def test_tools_usage_errors_of_run(drover, tree):
    def run(*args):
        r = subprocess.run([drover, "run", *args], capture_output=True, text=True, timeout=60,
                           env=clean_env(), cwd=tree)
        assert not SANITIZER.search(r.stderr), r.stderr
        return r
    r = run("--tool-root", "nope", "--tool", "list")
    assert r.returncode == 2 and "tool root 'nope'" in r.stderr
    r = run("--tools", "file_read,nuke", "--tool", "list")
    assert r.returncode == 2 and "unknown tool \"nuke\"" in r.stderr
    r = run("--tool", "list", "--args", "[1]")
    assert r.returncode == 2 and "--args must be a JSON object" in r.stderr
    r = run("--tool", "list", "--", "ls")
    assert r.returncode == 2 and "no command" in r.stderr
    r = run("--args", "{}", "--", "ls")
    assert r.returncode == 2 and "--tool NAME" in r.stderr


# ---- escapes ----------------------------------------------------------------

ESCAPES = [
    ("dotdot", "file_read", {"path": "../outside/secret"}, "tool-root"),
    ("dotdot-deep", "file_read", {"path": "src/../../outside/secret"}, "tool-root"),
    ("absolute", "file_read", {"path": "{outside}/secret"}, "tool-root"),
    ("etc", "file_read", {"path": "/etc/passwd"}, "tool-root"),
    ("symlink-abs", "file_read", {"path": "link_abs"}, "tool-root"),
    ("symlink-rel", "file_read", {"path": "link_rel"}, "tool-root"),
    ("symlink-dir", "file_read", {"path": "dir_out/secret"}, "tool-root"),
    ("symlink-loop", "file_read", {"path": "loop"}, "tool-root"),
    ("fifo", "file_read", {"path": "fifo"}, "regular-files"),
    ("huge", "file_read", {"path": "big.bin"}, "tool-max-bytes"),
    ("list-out", "list", {"path": "dir_out"}, "tool-root"),
    ("find-out", "find", {"path": "..", "name": "*"}, "tool-root"),
    ("grep-out", "grep", {"pattern": "secret", "path": "dir_out"}, "tool-root"),
    ("grep-abs", "grep", {"pattern": "secret", "path": "{outside}"}, "tool-root"),
    ("write-dotdot", "file_write", {"path": "w/../../outside/secret", "content": "x"}, None),
    ("write-abs", "file_write", {"path": "{outside}/new", "content": "x"}, "tool-root"),
    ("write-link", "file_write", {"path": "link_abs", "content": "x"}, "tool-write-root"),
    ("write-readonly", "file_write", {"path": "a.txt", "content": "x"}, "tool-write-root"),
    ("write-huge", "file_write", {"path": "w/h", "content": "x" * (1 << 20 + 1)},
     "tool-max-bytes"),
    ("edit-link", "file_edit", {"path": "link_rel", "old": "top", "new": "x"},
     "tool-write-root"),
]


def expand(args, tree):
    return {k: v.replace("{outside}", str(tree / "outside")) if isinstance(v, str) else v
            for k, v in args.items()}


def snapshot(tree):
    out = tree / "outside"
    return sorted((p.name, p.read_bytes()) for p in out.iterdir())


@pytest.mark.parametrize("walk", ["openat2", "fallback"])
@pytest.mark.parametrize("name,tool_name,args,rule", ESCAPES, ids=[e[0] for e in ESCAPES])
def test_tools_escape_is_refused_126(drover, tree, walk, name, tool_name, args, rule):
    env = {"DROVER_TOOLS_NO_OPENAT2": "1"} if walk == "fallback" else None
    before = snapshot(tree)
    code, doc, err = tool(drover, tree, tool_name, expand(args, tree), env=env)
    assert code == 126, (doc, err)
    assert doc["exit"] == 126
    if rule is None:   # either names it: out of the write root, or out of every root
        assert doc["rule"] in ("tool-root", "tool-write-root")
    elif walk == "fallback" and rule == "tool-write-root" and name.endswith("link"):
        assert doc["rule"] in ("tool-root", "tool-write-root")
    else:
        assert doc["rule"] == rule, doc
    assert f"--{doc['rule']}" in doc["error"] or doc["rule"] == "regular-files"
    assert "error: " in err and doc["error"] in err
    assert SECRET not in json.dumps(doc)
    assert snapshot(tree) == before, "something outside the roots changed"


def test_tools_no_root_configured_is_refused(drover, tree):
    r = subprocess.run([drover, "run", "--tool", "file_read", "--args", '{"path": "a.txt"}'],
                       capture_output=True, text=True, timeout=60, env=clean_env(),
                       cwd=tree / "root")
    assert r.returncode == 126
    doc = json.loads(r.stdout)
    assert doc["rule"] == "tool-root" and "--tool-root DIR" in doc["error"]


def test_tools_exec_takes_its_policy_from_its_words_only(drover, tree):
    # tool-exec, what a tool job runs, reads no DROVER_* variable and no
    # config file: the job's environment cannot widen its policy.
    cfg = tree / "cfg.yaml"
    cfg.write_text("tool-root: /\n")
    r = subprocess.run([drover, "tool-exec", "--tool-root", str(tree / "root"), "file_read"],
                       input=json.dumps({"path": str(tree / "outside" / "secret")}),
                       capture_output=True, text=True, timeout=60,
                       env=clean_env({"DROVER_TOOL_ROOT": "/", "DROVER_CONFIG": str(cfg)}))
    assert not SANITIZER.search(r.stderr), r.stderr
    assert r.returncode == 126
    assert json.loads(r.stdout)["rule"] == "tool-root"
    assert SECRET not in r.stdout


def test_tools_isolate_never_runs_without_the_sandbox(drover, tree):
    # --tool-isolate asks the executor for network none, a read-only root
    # and the roots bound in. A runner that cannot give it refuses the job
    # (exit 125, the executor's reason); one that can runs it isolated. It
    # never runs the tool without.
    cmd = [drover, "run", *policy(tree), "--tool-isolate", "--tool", "file_write", "--args",
           json.dumps({"path": "w/iso.txt", "content": "x"})]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=clean_env(),
                       cwd=tree)
    assert not SANITIZER.search(r.stderr), r.stderr
    if r.returncode == 125:   # refused before it started, with the executor's reason
        assert os.geteuid() != 0, "root can isolate: " + r.stderr
        assert r.stderr.startswith("error: ") and r.stdout == ""
        assert not (tree / "root" / "w" / "iso.txt").exists()
    else:
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"bytes": 1}
        assert (tree / "root" / "w" / "iso.txt").read_text() == "x"



def test_tools_isolation_can_be_turned_off(drover, tree):
    # Isolation is the default (every other test here runs with it); with
    # --tool-isolate=false the same call runs in the runner's namespaces.
    cmd = [drover, "run", *policy(tree), "--tool-isolate=false", "--tool", "file_write", "--args",
           json.dumps({"path": "w/plain.txt", "content": "y"})]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=clean_env(), cwd=tree)
    assert not SANITIZER.search(r.stderr), r.stderr
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"bytes": 1}
    assert (tree / "root" / "w" / "plain.txt").read_text() == "y"

GREP_PATTERNS = ["TODO", "colou?r", "a+b", r"x{2}yz", r"error_\d{3} occurred", r"^\s*int\b",
                 r"(?i)todo", "foo|bar", r"[(]void[)]", r"\.c$", r"e\s+", "zz+top", r"\Qa.b\E",
                 r"(ab)+c", "^$", r"\bthe\b", r"int(*ACCEPT) main", r"o(?=u)ur", r"x{1,3}yz",
                 r"z{2}top"]


@pytest.mark.parametrize("pattern", GREP_PATTERNS)
def test_tools_grep_finds_what_gnu_grep_P_finds(drover, tree, pattern):
    # The same lines as GNU grep -P (PCRE2 too), whichever path the search
    # takes: a literal every match holds, or the pattern over whole files.
    d = tree / "root" / "g"
    d.mkdir()
    (d / "one.txt").write_text("the colour and the color\nxxyz a.b aab\nabababc\n\n"
                               "error_123 occurred\nint x;\n  int y;\nfoo\nzztop zzzztop\n1,3yz\n")
    (d / "two.c").write_text("int main(void)\n{\n  // TODO: todo\n}\nthen other\nhello.c\n")
    _, doc, _ = tool(drover, tree, "grep", {"pattern": pattern, "path": "g"}, expect=0)
    got = sorted((m["path"], m["line"], m["text"]) for m in doc["matches"])
    r = subprocess.run(["grep", "-rnIP", "--", pattern, "g"], capture_output=True, text=True,
                       cwd=tree / "root", env=dict(os.environ, LC_ALL="C"))
    want = sorted((p, int(n), t) for p, n, t in
                  (line.split(":", 2) for line in r.stdout.splitlines()))
    assert got == want


def test_tools_path_longer_than_path_max_is_refused_before_any_walk(drover, tree):
    path = "w/" + "a/" * 100000 + "x"   # would be 100,000 folders
    _, doc, _ = tool(drover, tree, "file_write", {"path": path, "content": "x"}, expect=1)
    assert "File name too long" in doc["error"] and len(doc["error"]) < 1024
    assert not (tree / "root" / "w" / "a").exists()


def test_tools_exec_help_and_usage(drover):
    r = subprocess.run([drover, "tool-exec", "--help"], capture_output=True, text=True,
                       timeout=60, env=clean_env())
    assert r.returncode == 0 and r.stdout.startswith("usage: drover tool-exec")
    r = subprocess.run([drover, "tool-exec"], capture_output=True, text=True, timeout=60,
                       env=clean_env(), stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and json.loads(r.stdout)["error"].startswith("usage:")
    assert not SANITIZER.search(r.stderr), r.stderr
