"""The report checked as a person would (`make report-check`): build a suite's `snakemake --report`, open it
in headless Chromium, look at it, and exit non-zero when it is empty or broken.

    python tests/report_check.py                              # the smoke suite (tiny models; ~1 min, once)
    python tests/report_check.py --suite config/smoke-mlm.yaml --shots /tmp/shots   # another suite
    python tests/report_check.py --report results/report-main.zip   # a report `make report` built, as it is

1. The suite runs in a copy of the workflow (`--workdir`, default results/report-check/<suite>/, data linked),
   so the repository's results/ and figures/ stay as they are; a second call reruns nothing. Then
   `snakemake --report report-<suite>.zip` there.
2. The report's own index (report.html's `results` and `categories`) must list every table the suite wrote
   (results/tables/) and every PNG figure (figures/<suite>/), labelled with the suite and the table's or
   figure's kind, and the zip must hold each file.
3. Chromium (Debian's; apt-get installs it when it is missing and we are root) opens report.html, driven over
   the DevTools protocol on a pipe (--remote-debugging-pipe: standard library only, nothing to download).
   The page must render its menu, the suite's name and the rule graph, without a JavaScript error; a mouse
   click on Tables must list every table, one on Figures every figure, one on a figure's view button must
   show its image and one on its info button its caption. Screenshots of the main page, the tables list and
   that figure go to `--shots`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a copy of the workflow needs to run and report (data is linked).
WORKFLOW_FILES = ("Snakefile", "rules", "report", "config", "profiles", "envs")
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
FIGURE_TO_SHOW = "accuracy"  # the figure page screenshotted (the first figure when a suite has none such)


class CheckFailed(Exception):
    pass


# ---- the suite and its report ----------------------------------------------------------------------------


def suite_name(config: Path) -> str:
    match = re.search(r"^suite:\s*(\S+)", config.read_text(encoding="utf-8"), re.M)
    if not match:
        raise CheckFailed(f"{config}: no `suite:` line")
    return match.group(1).strip("'\"")


def copy_workflow(workdir: Path) -> None:
    """The workflow's files into workdir (replaced each time, so an edited rule or caption is picked up)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src, dst = ROOT / name, workdir / name
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)
    if not (workdir / "data").exists():
        (workdir / "data").symlink_to(ROOT / "data")


def snakemake(workdir: Path, *args: str, timeout: float = 3600) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "snakemake", *args]
    out = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        tail = (out.stdout + out.stderr)[-4000:]
        raise CheckFailed(f"`snakemake {' '.join(args)}` in {workdir} failed (rc {out.returncode}):\n{tail}")


def build_report(workdir: Path, config: str, cores: str = "all") -> Path:
    """Run the suite in workdir (nothing to do when it is complete), then its report; the zip's path."""
    snakemake(workdir, "--cores", cores, "--configfile", config)
    report = workdir / f"report-{suite_name(workdir / config)}.zip"
    report.unlink(missing_ok=True)
    snakemake(workdir, "--report", report.name, "--configfile", config, timeout=600)
    return report


def suite_outputs(workdir: Path, suite: str) -> list[str]:
    """What the report must hold: every table in results/tables/ (a workdir runs one suite) and every PNG
    figure in figures/<suite>/ (its PDF twin is the same drawing)."""
    tables = sorted(p.relative_to(workdir).as_posix() for p in (workdir / "results" / "tables").glob("*.*"))
    figures = sorted(p.relative_to(workdir).as_posix() for p in (workdir / "figures" / suite).glob("*.png"))
    return tables + figures


def _script_json(html: str, name: str) -> dict:
    match = re.search(rf"^\s*var {name} = (\{{.*\}});$", html, re.M)  # the app's data: one JSON line
    if not match:
        raise CheckFailed(f"report.html has no `var {name}`: not a Snakemake report")
    return json.loads(match.group(1))


def read_report(report: Path) -> tuple[dict, dict, set[str]]:
    """(results, categories, the zip's file names): the report app's index of its files, by path."""
    with zipfile.ZipFile(report) as z:
        names = set(z.namelist())
        pages = [n for n in names if n.endswith("/report.html")]
        if len(pages) != 1:
            raise CheckFailed(f"{report}: expected one report.html, found {pages}")
        html = z.read(pages[0]).decode("utf-8")
    return _script_json(html, "results"), _script_json(html, "categories"), names


def kind_of(path: str) -> tuple[str, str]:
    """('table' or 'figure', the format) of an output path."""
    return ("figure" if path.startswith("figures/") else "table"), path.rsplit(".", 1)[1]


def check_contents(report: Path, expected: list[str], suite: str) -> list[str]:
    """Problems with the report's index against the suite's outputs (empty: none)."""
    results, categories, names = read_report(report)
    problems = []
    if not expected:
        problems.append("the suite made no table or figure")
    folder = report.stem
    listed = {p for subcats in categories.values() for paths in subcats.values() for p in paths}
    for path in expected:
        entry = results.get(path)
        if entry is None:
            problems.append(f"{path} is not in the report")
            continue
        key, fmt = kind_of(path)
        labels = entry.get("labels") or {}
        if labels.get("suite") != suite or not labels.get(key) or labels.get("format") != fmt:
            problems.append(f"{path}: labels {labels} lack suite={suite}, {key}=<kind> or format={fmt}")
        if path not in listed:
            problems.append(f"{path} is in no category")
        if f"{folder}/{entry['data_uri']}" not in names:
            problems.append(f"{path}: its file {entry['data_uri']} is not in {report.name}")
        if not entry.get("caption", "").strip():
            problems.append(f"{path} has no caption")
    extra = sorted(set(results) - set(expected))
    if extra:
        problems.append(f"the report lists files the suite did not make: {extra}")
    return problems


# ---- Chromium over the DevTools protocol ------------------------------------------------------------------


def find_chromium(install: bool = True) -> str:
    """Chromium's path; Debian's package is installed when it is missing and we are root."""
    for name in CHROMIUM:
        if found := shutil.which(name):
            return found
    if not install or not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        raise CheckFailed(
            "Chromium is not installed (looked for chromium, chromium-browser, google-chrome). As root on "
            "Debian: apt-get install --no-install-recommends chromium; then rerun."
        )
    print("report-check: installing Debian's chromium (apt-get)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
    ):
        if subprocess.run(cmd, env=env).returncode != 0:
            raise CheckFailed(f"`{' '.join(cmd)}` failed")
    return find_chromium(install=False)


class Browser:
    """Headless Chromium driven over --remote-debugging-pipe: commands on its fd 3, replies and events on
    its fd 4, each a JSON message ended by a NUL byte."""

    def __init__(self, binary: str, width: int = 1400, height: int = 900):
        self._tmp = tempfile.TemporaryDirectory(prefix="report-check-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        args = [
            binary,
            "--headless",
            "--no-sandbox",  # root in a container has no user namespace for the sandbox
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
            f"--user-data-dir={self._tmp.name}/profile",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        self._log = open(Path(self._tmp.name) / "chromium.log", "w+b")  # noqa: SIM115 (closed in close())

        def pipes_on_3_and_4():  # in the child: the pipe ends where Chromium expects them
            # first copies above 9, so that neither end is overwritten by the other's dup2
            ends = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome_r, from_chrome_w)]
            for fd, end in zip((3, 4), ends, strict=True):
                os.dup2(end, fd)  # inheritable; every other descriptor Python opened is not (PEP 446)

        self.proc = subprocess.Popen(
            args,
            preexec_fn=pipes_on_3_and_4,
            close_fds=False,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for method in ("Page.enable", "Runtime.enable"):
            self.call(method, session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )

    def _read(self, timeout: float) -> dict | None:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_chrome], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                self._log.seek(0)
                raise CheckFailed(f"Chromium exited:\n{self._log.read().decode(errors='replace')[-3000:]}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(
        self, method: str, params: dict | None = None, session: bool = False, timeout: float = 60
    ) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            reply = self._read(left)
            if reply is None:
                break
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CheckFailed(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
        raise CheckFailed(f"{method}: no reply from Chromium in {timeout} s")

    def errors(self) -> list[str]:
        """JavaScript exceptions the page has thrown so far."""
        return [
            e["params"]["exceptionDetails"].get("exception", {}).get("description")
            or e["params"]["exceptionDetails"].get("text", "?")
            for e in self.events
            if e.get("method") == "Runtime.exceptionThrown"
        ]

    def open(self, url: str, timeout: float = 60) -> None:
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise CheckFailed(f"{url} did not load in {timeout} s")
            if (event := self._read(deadline - time.monotonic())) is not None:
                self.events.append(event)

    def js(self, expression: str):
        reply = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=True,
        )
        if "exceptionDetails" in reply:
            raise CheckFailed(
                f"JavaScript failed: {reply['exceptionDetails'].get('text')} in {expression[:200]}"
            )
        return reply["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := self.js(expression):
                return value
            time.sleep(0.1)
        raise CheckFailed(f"the report did not show {what} within {timeout} s")

    def click(self, element_js: str, what: str, timeout: float = 30) -> None:
        """A left click, as a mouse would, at the centre of the element `element_js` evaluates to, once that
        point hits the element: the report styles itself with Tailwind's runtime after load, so an element's
        box can still move when it first exists (a click at its old centre lands elsewhere)."""
        hit = (
            f"(() => {{ const el = {element_js}; if (!el) return null; el.scrollIntoView({{block: 'center'}});"
            " const r = el.getBoundingClientRect(); const x = r.x + r.width / 2, y = r.y + r.height / 2;"
            " const top = document.elementFromPoint(x, y);"
            " return top && (el === top || el.contains(top) || top.contains(el)) ? [x, y] : null; })()"
        )
        x, y = self.wait_for(hit, f"{what} where it can be clicked", timeout)
        self.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y}, session=True)
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
                session=True,
            )

    def click_until(self, element_js: str, what: str, shown_js: str, shown_what: str, timeout: float):
        """Click `element_js` until `shown_js` is truthy (its value). A click can still be lost while the page
        settles; clicking a report menu entry again only sets the same view."""
        deadline = time.monotonic() + timeout
        while True:
            if self.js(f"!!({element_js})"):
                self.click(element_js, what, timeout=max(0.1, deadline - time.monotonic()))
            try:
                return self.wait_for(
                    shown_js, shown_what, timeout=min(10.0, max(0.1, deadline - time.monotonic()))
                )
            except CheckFailed:
                if time.monotonic() >= deadline:
                    shown = self.js(
                        "document.querySelector('nav') ? document.querySelector('nav').innerText : ''"
                    )
                    raise CheckFailed(
                        f"the report did not show {shown_what} within {timeout} s after clicking {what};"
                        f" the navbar read: {' '.join(str(shown).split())[:400]!r}"
                    ) from None

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(CheckFailed):  # it may exit before it answers
            self.call("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        self._log.close()
        self._tmp.cleanup()


# JavaScript helpers: the navbar's menu entry whose text is exactly `name`, and the rows of its results list.
_MENU_ITEM = "[...document.querySelectorAll('nav a')].find(a => a.innerText.trim() === {name})"
_ROWS = (
    "[...document.querySelectorAll('nav tbody tr')].map(tr => [...tr.cells].map(td => td.innerText.trim()))"
)


def _rows_listing(kinds: set[tuple[str, str]]) -> str:
    """A JS expression: the results list's rows, once every (kind, format) in `kinds` has a row."""
    wanted = json.dumps(sorted(kinds))
    return (
        f"(() => {{ const rows = {_ROWS}; const have = new Set(rows.map(r => r[0] + '|' + r[1]));"
        f" return {wanted}.every(([k, f]) => have.has(k + '|' + f)) ? rows : null; }})()"
    )


def listing(report: Path, paths: list[str]) -> dict:
    """What the browser must show for `paths` (from the report's index): the (kind, format) rows of Tables
    and of Figures, and each figure's caption as text."""
    results, _, _ = read_report(report)
    figures = [p for p in paths if kind_of(p)[0] == "figure"]
    return {
        "suite": results[paths[0]]["labels"]["suite"],
        "tables": {(results[p]["labels"]["table"], kind_of(p)[1]) for p in paths if kind_of(p)[0] == "table"},
        "figures": {(results[p]["labels"]["figure"], "png") for p in figures},
        "captions": {
            results[p]["labels"]["figure"]: " ".join(re.sub(r"<[^>]+>", " ", results[p]["caption"]).split())
            for p in figures
        },
    }


def _wait_for_main_page(browser: Browser, suite: str, timeout: float) -> None:
    """The main page, settled: its menu with Tables and Figures, the workflow description (it names the
    suite) and the rule graph."""
    browser.wait_for(
        f"!!(document.querySelector('nav') && {_MENU_ITEM.format(name=json.dumps('Figures'))}"
        f" && {_MENU_ITEM.format(name=json.dumps('Tables'))})",
        "its menu with Tables and Figures",
        timeout,
    )
    browser.wait_for(
        f"document.body.innerText.includes({json.dumps('suite ' + suite)})",
        f"the suite's name ({suite})",
        timeout,
    )
    browser.wait_for(
        "!!document.querySelector('.vega-embed canvas, .vega-embed svg')", "the rule graph", timeout
    )
    time.sleep(0.5)  # the rule graph's layout settles


def check_in_browser(report: Path, want: dict, shots: Path, chromium: str, timeout: float = 90) -> list[Path]:
    """Open the unzipped report, click through Tables and one figure (`want`: listing()); the screenshots."""
    suite, tables, figures = want["suite"], want["tables"], want["figures"]
    if not tables or not figures:
        raise CheckFailed(f"nothing to look for: tables {sorted(tables)}, figures {sorted(figures)}")
    shown = FIGURE_TO_SHOW if (FIGURE_TO_SHOW, "png") in figures else min(figures)[0]
    with tempfile.TemporaryDirectory(prefix="report-check-") as tmp:
        with zipfile.ZipFile(report) as z:
            z.extractall(tmp)
        page = (Path(tmp) / report.stem / "report.html").as_uri()
        browser = Browser(chromium)
        try:
            browser.open(page)
            _wait_for_main_page(browser, suite, timeout)
            written = [shots / "main.png"]
            browser.screenshot(written[-1])

            browser.click_until(
                _MENU_ITEM.format(name=json.dumps("Tables")),
                "the Tables menu entry",
                _rows_listing(tables),
                f"every table in the Tables list ({sorted(tables)})",
                timeout,
            )
            written.append(shots / "tables.png")
            browser.screenshot(written[-1])

            browser.open(page)  # back to the start, as a reader would, then Figures
            _wait_for_main_page(browser, suite, timeout)
            browser.click_until(
                _MENU_ITEM.format(name=json.dumps("Figures")),
                "the Figures menu entry",
                _rows_listing(figures),
                f"every figure in the Figures list ({sorted(figures)})",
                timeout,
            )
            view = (
                "[...document.querySelectorAll('nav tbody tr')]"
                f".find(tr => tr.cells[0].innerText.trim() === {json.dumps(shown)}).querySelector('td:last-child a')"
            )
            width = browser.click_until(
                view,
                f"the view button of the {shown} figure",
                f"(() => {{ const img = [...document.querySelectorAll('img')].find(i => i.src.endsWith("
                f"{json.dumps('/' + shown + '.png')})); return img && img.complete && img.naturalWidth; }})()",
                f"the {shown} figure's image",
                timeout,
            )
            if width < 100:
                raise CheckFailed(f"the {shown} figure shows as an image {width} px wide")
            # its info button: the navbar shows the figure's labels and caption beside the image
            caption = " ".join(want["captions"][shown].split()[:6])
            browser.click_until(
                view.replace("td:last-child a", "td:last-child a:last-of-type"),
                f"{shown}'s info button",
                f"document.querySelector('nav').innerText.replace(/\\s+/g, ' ').includes({json.dumps(caption)})",
                f"the {shown} figure's caption ({caption!r})",
                timeout,
            )
            written.append(shots / f"figure-{shown}.png")
            browser.screenshot(written[-1])
            if errors := browser.errors():
                raise CheckFailed(f"the report's page threw JavaScript errors: {errors}")
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--suite", default="config/smoke.yaml", help="the suite's config, relative to the repository"
    )
    parser.add_argument(
        "--workdir", type=Path, help="where the suite runs (default results/report-check/<suite>)"
    )
    parser.add_argument(
        "--report",
        type=Path,
        help="check this report (make report's zip) as it is: no run, its own index as the list",
    )
    parser.add_argument(
        "--shots", type=Path, default=ROOT / "bench" / "out" / "report", help="screenshot folder"
    )
    parser.add_argument("--cores", default="all")
    parser.add_argument("--no-browser", action="store_true", help="check the report's index only")
    args = parser.parse_args(argv)
    try:
        chromium = None if args.no_browser else find_chromium()  # before the run: fail early
        start = time.monotonic()
        if args.report:
            report = args.report.resolve()
            results, _, _ = read_report(report)
            expected = sorted(p for p in results if kind_of(p)[0] == "table" or p.endswith(".png"))
            suite = results[expected[0]]["labels"]["suite"] if expected else "?"
        else:
            suite = suite_name(ROOT / args.suite)
            workdir = (args.workdir or ROOT / "results" / "report-check" / suite).resolve()
            copy_workflow(workdir)
            report = build_report(workdir, args.suite, args.cores)
            expected = suite_outputs(workdir, suite)
        print(
            f"report-check: {report} ({len(expected)} tables and figures, {time.monotonic() - start:.0f} s)"
        )
        if problems := check_contents(report, expected, suite):
            raise CheckFailed("the report is incomplete:\n  " + "\n  ".join(problems))
        if chromium:
            for shot in check_in_browser(report, listing(report, expected), args.shots, chromium):
                print(f"report-check: screenshot {shot}")
    except CheckFailed as e:
        print(f"report-check FAILED: {e}", file=sys.stderr)
        return 1
    print("report-check: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
