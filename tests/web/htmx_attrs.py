"""A page as htmx sees it: each form control, the elements around it, and who asks the server on its change.

htmx attributes are inherited (`hx-include`, `hx-target`, `hx-sync`, `hx-swap`, `hx-vals` … from the closest
ancestor that has them, `unset` stops the search), and a trigger on a container hears its controls' events
unless an inner asker consumes them (`hx-trigger="… consume"`). These helpers resolve both, so a test can
assert what a change of a control asks for without caring on which element the page declares it.
"""

from __future__ import annotations

from html.parser import HTMLParser

VERBS = ("hx-get", "hx-post")


class _Tree(HTMLParser):
    """Each form control with the attributes of the elements around it (innermost first)."""

    VOID = {"input", "br", "img", "meta", "link", "hr", "option"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[dict] = []
        self.controls: list[tuple[dict, list[dict]]] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        attributes = {"tag": tag, **{k: v or "" for k, v in attrs}}
        if tag in ("input", "select"):
            self.controls.append((attributes, list(reversed(self.stack))))
        if tag not in self.VOID:
            self.stack.append(attributes)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i]["tag"] == tag:
                del self.stack[i:]
                return


def controls(html: str) -> list[tuple[dict, list[dict]]]:
    tree = _Tree()
    tree.feed(html)
    return tree.controls


def control_named(html: str, name: str, **attrs: str) -> tuple[dict, list[dict]]:
    """The first control called `name` (and having `attrs`), with the elements around it."""
    return next((c, around) for c, around in controls(html)
                if c.get("name") == name and all(c.get(k) == v for k, v in attrs.items()))


def askers(control: dict, around: list[dict]) -> list[list[dict]]:
    """Every element that sends a request when the control changes, each as [element, *its ancestors]."""
    chain = [control, *around]
    found = []
    for i, element in enumerate(chain):
        if any(verb in element for verb in VERBS) and hears_change(element, is_control=i == 0):
            found.append(chain[i:])
            if "consume" in element.get("hx-trigger", ""):
                break
    return found


def hears_change(element: dict, *, is_control: bool) -> bool:
    """Whether the element's trigger is a change (an input's or select's default; a form's is submit)."""
    trigger = element.get("hx-trigger")
    if trigger is None:
        return is_control
    return any(part.split()[0] == "change" for part in trigger.split(",") if part.strip())


def effective(chain: list[dict], attribute: str) -> str | None:
    """The value htmx uses for `attribute` on chain[0]: its own, else the closest ancestor's."""
    for element in chain:
        if attribute in element:
            value = element[attribute]
            return None if value == "unset" else value
    return None


def request(chain: list[dict]) -> dict:
    """What the asker chain[0] sends: verb and URL, and the inherited attributes that shape it."""
    element = chain[0]
    verb = next(v for v in VERBS if v in element)
    return {"verb": verb, "url": element[verb], "hx-trigger": element.get("hx-trigger"),  # not inherited
            **{a: effective(chain, a) for a in ("hx-include", "hx-target", "hx-sync", "hx-swap", "hx-vals")}}
