from playwright.sync_api import expect

# Two cores run the web server, the worker, the emulator and Chromium at once: give the page
# time to answer under load rather than flake (actions still fail fast on a wrong page).
expect.set_options(timeout=20_000)
