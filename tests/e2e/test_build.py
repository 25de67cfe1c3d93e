"""The test build cannot pass by running nothing: without cmocka, -Dtests=enabled
refuses to configure, and `make unit` fails on a build dir that has no unit tests."""
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _env_without_cmocka(tmp_path):
    """pkg-config sees every installed .pc file but cmocka's; cmake (meson's other way
    to find cmocka) is made unusable by a native file."""
    pc = tmp_path / "pkgconfig"
    pc.mkdir()
    paths = subprocess.run(["pkg-config", "--variable", "pc_path", "pkg-config"], check=True,
                           capture_output=True, text=True).stdout.strip().split(":")
    for d in paths:
        if not os.path.isdir(d):
            continue
        for f in os.listdir(d):
            if f.endswith(".pc") and f != "cmocka.pc" and not (pc / f).exists():
                (pc / f).symlink_to(os.path.join(d, f))
    native = tmp_path / "native.ini"
    native.write_text("[binaries]\ncmake = '/bin/false'\n")
    env = dict(os.environ, PKG_CONFIG_LIBDIR=str(pc))
    return env, ["--native-file", str(native)]


def test_build_without_cmocka_cannot_pass_unit(tmp_path):
    env, native = _env_without_cmocka(tmp_path)
    # The test build asks for the unit tests: a missing cmocka is an error at setup.
    p = subprocess.run(["meson", "setup", str(tmp_path / "enabled"), "-Dtests=enabled", *native],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0, f"-Dtests=enabled configured without cmocka:\n{p.stdout[-2000:]}"
    assert "cmocka" in p.stdout + p.stderr, p.stdout[-2000:] + p.stderr[-2000:]
    # The default (auto) still configures, so the drover binary builds without cmocka...
    auto = tmp_path / "auto"
    p = subprocess.run(["meson", "setup", str(auto), *native], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "Run-time dependency cmocka found: NO" in p.stdout, p.stdout[-3000:]
    # ...but `make unit` on that build dir fails instead of passing with no test run.
    p = subprocess.run(["make", "--no-print-directory", "unit", f"ASAN_BUILD={auto}"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0, f"make unit passed with no unit test:\n{p.stdout[-2000:]}{p.stderr[-2000:]}"
    assert f"error: no unit tests in '{auto}'" in p.stderr, p.stdout[-2000:] + p.stderr[-2000:]
