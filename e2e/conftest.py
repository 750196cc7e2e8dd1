import pytest
from playwright.sync_api import expect

# The harness plugin (-p tests.plugins.harness) loads before pytest-playwright, whose own fixture would
# shadow the harness's launch arguments (Debian's Chromium): defined here, a conftest's fixture wins.
from tests.plugins.harness import browser_type_launch_args  # noqa: F401

# Two cores run the web server, the worker, the emulator and Chromium at once: give the page
# time to answer under load rather than flake (actions still fail fast on a wrong page).
expect.set_options(timeout=20_000)


# Chromium reports every blocked inline script, handler, style or eval on the console
# ("Refused to ... because it violates the following Content Security Policy directive").
# The listener also catches violations the console might word differently.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`Content Security Policy violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`
                + ` at ${e.sourceFile}:${e.lineNumber}`);
});
"""


@pytest.fixture(autouse=True)
def no_csp_violations(request):
    """Fail a browser test whose pages broke the Content-Security-Policy (the feature would be broken)."""
    if "page" not in request.fixturenames:
        yield
        return
    page = request.getfixturevalue("page")
    seen: list[str] = []
    page.on(
        "console", lambda msg: seen.append(f"{page.url}: {msg.text}") if "Content Security Policy" in msg.text else None
    )
    page.add_init_script(REPORT_VIOLATIONS)
    yield
    assert not seen, "Content-Security-Policy violations:\n" + "\n".join(seen)
