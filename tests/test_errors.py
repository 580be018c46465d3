"""Every `error` code the server can send has a plain message on the page and a row in the README.

The codes are read from the source: each is the literal first argument of a FrameError in app/ (the one way
the server sends a code). The page's messages are the entries of static/js/errors.js, one line per code; the
README's are the rows of its "Error codes" table. All three must list the same codes, the page and the README
with the same words, so a code added without a message fails here.
"""
from __future__ import annotations

import re

from ml.config import ROOT

SENT = re.compile(r"FrameError\(\s*[\"'](\w+)[\"']")
JS_ENTRY = re.compile(r'^  (\w+): "(.+)",$', re.M)
README_ROW = re.compile(r"^\| `(\w+)` \| (.+) \|$", re.M)


def server_codes() -> dict[str, list[str]]:
    """code -> the app/ files that send it."""
    codes: dict[str, list[str]] = {}
    for path in sorted((ROOT / "app").rglob("*.py")):
        for code in SENT.findall(path.read_text()):
            codes.setdefault(code, []).append(path.name)
    return codes


def page_messages() -> dict[str, str]:
    text = (ROOT / "static" / "js" / "errors.js").read_text()
    block = text.split("export const ERROR_MESSAGES = {", 1)[1].split("\n};", 1)[0]
    return dict(JS_ENTRY.findall(block))


def readme_messages() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Error codes\n", 1)[1].split("\n## ", 1)[0]
    return dict(README_ROW.findall(section))


def test_the_extraction_finds_the_codes_of_every_sender():
    codes = server_codes()
    # one code known to come from each place that sends them: frames, live session, live handlers, record mode
    for code, sender in [("bad_image", "frames.py"), ("closed", "session.py"), ("tts_failed", "realtime.py"),
                         ("no_hand", "recording.py"), ("rate_limited", "session.py")]:
        assert sender in codes.get(code, []), (code, codes.get(code))


def test_codes_are_sent_only_through_frame_error():
    """A code written any other way (a literal {"code": ...} dict) would escape the list: refuse it."""
    for path in sorted((ROOT / "app").rglob("*.py")):
        if path.name == "frames.py":  # FrameError.as_dict, the one place that builds the dict
            continue
        for line in path.read_text().splitlines():
            assert not re.search(r"[\"']code[\"']\s*:", line), \
                f"{path.name}: send error codes as FrameError(code, message): {line.strip()}"


def test_every_code_has_a_plain_message_on_the_page_and_in_the_readme():
    sent, page, readme = set(server_codes()), page_messages(), readme_messages()
    assert sorted(sent - set(page)) == [], "codes the server sends without a message in static/js/errors.js"
    assert sorted(set(page) - sent) == [], "messages in static/js/errors.js for codes the server never sends"
    assert readme == page, "README's Error codes table and static/js/errors.js differ"
    for code, message in page.items():
        assert code not in message and message[0].isupper() and message.endswith("."), (code, message)


def test_the_page_shows_errors_only_through_the_message_map():
    """live.js, record.js and calibrate.js turn a server error into words with errorText, never show its raw message."""
    for name in ("live.js", "record.js", "calibrate.js"):
        script = (ROOT / "static" / "js" / name).read_text()
        assert 'import { errorText } from "./errors.js";' in script, name
        assert not re.search(r"\berror\.message\b", script), f"{name} shows a server error's raw message"
