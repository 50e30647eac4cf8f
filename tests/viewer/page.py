"""The OHIF 3.13.2 page in headless Chromium, driven the way a radiologist uses it: used by the
viewer test (``test_ohif.py``) and by ``./scripts/viewer --screenshot`` (the pictures in the docs).

OHIF defects that shape it are described in ``test_ohif.py``'s module docstring.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

# Console entries that mean OHIF failed (it logs its error boundary at DEBUG level).
ERROR_MARKERS = ("Error Boundary", "TypeError", "Uncaught", "Something went wrong")
UI_TIMEOUT = 60.0
SR_ATTEMPTS = 8
SR_DRAW_TIMEOUT = 10.0


class Page:
    """The OHIF page in Chromium, with the console log kept across reads."""

    def __init__(self, driver: Any, shots: Path):
        self.driver = driver
        self.shots = shots
        self.console: list[dict[str, Any]] = []
        self.sr_attempts: list[tuple[str, int]] = []
        self.url = ""

    def read_console(self) -> list[dict[str, Any]]:
        self.console.extend(self.driver.get_log("browser"))
        return self.console

    def wait(self, what: str, probe: Any, timeout: float = UI_TIMEOUT) -> Any:
        """``probe()`` once it is true; an error with a screenshot and the console's tail after
        ``timeout`` seconds."""
        value = self.wait_for(probe, timeout)
        if not value:
            self.timed_out(f"{timeout:.0f} s waiting for {what}")
        return value

    def wait_for(self, probe: Any, timeout: float) -> Any:
        """``probe()`` once it is true, or None after ``timeout`` seconds; OHIF errors fail."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            self.fail_on_errors()
            if time.monotonic() > deadline:
                return None
            time.sleep(0.25)

    def timed_out(self, what: str) -> None:
        self.screenshot("timeout.png")
        tail = "\n".join(f"{e['level']}: {e['message'][:300]}" for e in self.read_console()[-25:])
        raise AssertionError(f"OHIF: timed out after {what}; last console entries:\n{tail}")

    def errors(self) -> list[str]:
        out = []
        for entry in self.read_console():
            message = entry["message"]
            if entry["level"] == "SEVERE" or any(m in message for m in ERROR_MARKERS):
                out.append(f"{entry['level']}: {message[:600]}")
        return out

    def fail_on_errors(self) -> None:
        errors = self.errors()
        if errors:
            self.screenshot("error.png")
            raise AssertionError("OHIF logged errors:\n" + "\n".join(errors))

    def screenshot(self, name: str, folder: Path | None = None) -> None:
        folder = folder or self.shots
        folder.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(folder / name))

    def annotations(self) -> dict[str, str]:
        """Annotation UID → its drawn text, in the SVG layer of the viewport."""
        rows = self.driver.execute_script(
            "return Array.from(document.querySelectorAll('svg [data-annotation-uid]'))"
            ".map(g => [g.getAttribute('data-annotation-uid'), g.textContent])"
        )
        return {uid: text for uid, text in rows}

    def thumbnail(self, description: str) -> Any:
        """The study browser's SR entry with this series description, or None."""
        from selenium.webdriver.common.by import By

        for element in self.driver.find_elements(
            By.CSS_SELECTOR, "[data-cy=study-browser-thumbnail-no-image]"
        ):
            if description in element.text.replace("\n", " "):
                return element
        return None

    def open_sr(self, description: str, uid: str, *, first: bool) -> dict[str, str] | None:
        """Double-click the SR's entry (``first`` SR since the page loaded: say "Yes" to the
        "track measurements?" prompt); the annotations once group ``uid`` is drawn.

        After some page loads OHIF 3.13.2 (with Chromium 156 headless) shows the SR as selected
        and draws nothing, with nothing in the console that differs from a load that works;
        double-clicking again does not help, reloading the page does (the rate varies: 5 of 13
        to 13 of 14 loads on this machine, for the SR as written and for its copies alike). A
        radiologist would reload, and so does this: up to ``SR_ATTEMPTS`` page loads, each given
        ``SR_DRAW_TIMEOUT`` seconds; None if every load drew nothing. Every attempt is kept in
        ``self.sr_attempts`` (written to ``sr-attempts.txt``)."""
        from selenium.webdriver.common.action_chains import ActionChains

        for attempt in range(1, SR_ATTEMPTS + 1):
            entry = self.wait(
                f"the SR {description!r} in the study browser",
                lambda: self.thumbnail(description),
            )
            ActionChains(self.driver).double_click(entry).perform()
            self.sr_attempts.append((description, attempt))
            if first:
                prompt = self.wait_for(self.prompt, 10.0)
                if prompt:
                    prompt[0].click()
                    self.wait("the prompt to close", lambda: not self.prompt())
                    first = False
            if self.wait_for(lambda: uid in self.annotations(), SR_DRAW_TIMEOUT):
                break
            self.load(self.url)
            first = True  # a fresh page asks "track measurements?" again
        else:
            return None  # the viewer defect (module docstring): the caller decides
        time.sleep(0.5)  # let the region and the text of this image settle
        assert not self.prompt(), "OHIF asked 'track measurements?' again"
        return self.annotations()

    def keep_log(self) -> None:
        """``console.txt`` and ``sr-attempts.txt`` in the screenshot folder, pass or fail."""
        self.shots.mkdir(parents=True, exist_ok=True)
        attempts = "".join(f"{d}\tattempt {n}\n" for d, n in self.sr_attempts)
        (self.shots / "sr-attempts.txt").write_text(attempts)
        with contextlib.suppress(Exception):  # a dead browser must not hide the test's error
            self.read_console()
        lines = (f"{e['level']}: {e['message']}" for e in self.console)
        (self.shots / "console.txt").write_text("\n".join(lines))

    def load(self, url: str) -> None:
        """Open ``url`` (a study), the onboarding tour skipped (it covers the viewport)."""
        self.url = url
        self.driver.get(url.split("/viewer", 1)[0] + "/")
        self.driver.execute_script(
            "localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']))"
        )
        self.driver.get(url)

    def prompt(self) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, "[data-cy=yes-hydrate-btn]")

    def polylines(self) -> list[int]:
        """Number of points of each polyline drawn in the SVG layer."""
        return self.driver.execute_script(
            "return Array.from(document.querySelectorAll('svg.svg-layer polyline'))"
            ".map(p => p.getAttribute('points').trim().split(/[\\s,]+/).length / 2)"
        )
