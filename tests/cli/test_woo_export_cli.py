"""`rijkschat archive woo export REF --out FILE` against the real stack (Synapse, the archiver
bot, the bridge): a valid, signed package written under its name, its SHA-256 and size
printed; an existing file is never overwritten; errors are one line and leave no file."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import secrets
import zipfile
from pathlib import Path

import pypdf
import pytest

from tests.cli.conftest import Cli, one_error_line
from tests.cli.test_cli import archived

pytestmark = pytest.mark.synapse


async def test_export_writes_a_valid_package(clis: dict[str, Cli], tmp_path: Path) -> None:
    room = (await clis["minister"].run("create", f"Woo export {secrets.token_hex(3)}",
                                       "--invite", "ambtenaar1")).line
    await clis["ambtenaar1"].run("join", room)
    word = f"stikstof{secrets.token_hex(4)}"
    secret = f"geheimnummer{secrets.token_hex(4)}"
    public = f"De {word} is besproken"
    partly = f"Bel {secret} over de {word}"
    first = (await clis["minister"].run("send", room, public)).line
    second = (await clis["ambtenaar1"].run("send", room, partly)).line
    archivist = clis["archivaris"]
    await archived(archivist, word)
    reference = f"2026-{secrets.token_hex(3)}"
    await archivist.run("archive", "woo", "create", reference, "--title", "Stikstof",
                        "--room", room, "--query", word)
    for _ in range(60):  # both messages captured (the same sync or the next)
        case = (await archivist.run("archive", "woo", "show", reference, "--json")).json()
        if {first, second} <= {d["event_id"] for d in case["documents"]}:
            break
        await asyncio.sleep(0.5)
    assert [d["event_id"] for d in case["documents"]] == [first, second]
    out = tmp_path / "pakket.zip"

    # not every document assessed: refused, no file
    result = await archivist.run("archive", "woo", "export", reference, "--out", str(out),
                                 ok=False)
    assert "assess" in one_error_line(result)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []

    await archivist.run("archive", "woo", "assess", reference, first, "--decision", "openbaar")
    start = partly.index(secret)
    await archivist.run("archive", "woo", "assess", reference, second, "--decision",
                        "deels_openbaar", "--ground", "5.1.2e",
                        "--span", f"{start}:{start + len(secret)}:5.1.2e")
    result = await archivist.run("archive", "woo", "export", reference, "--out", str(out))
    data = out.read_bytes()
    assert f"SHA-256: {hashlib.sha256(data).hexdigest()}" in result.out
    assert f"{len(data)} bytes" in result.out
    assert [p.name for p in tmp_path.iterdir()] == ["pakket.zip"]  # no temporary file left
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        names = set(zf.namelist())
        pdf = zf.read(f"besluit-bijlage-{reference}.pdf")
        manifest = json.loads(zf.read("manifest.json"))
    assert {f"inventarislijst-{reference}.xlsx", f"inventarislijst-{reference}.csv",
            "manifest.json", "manifest.sig"} <= names
    assert manifest["request"]["reference"] == reference
    assert manifest["documents"] == 2
    text = " ".join(
        "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages).split()
    )
    assert public in text
    assert "5.1.2e" in text
    assert secret not in text
    assert secret.encode() not in data

    # an existing file is never overwritten
    result = await archivist.run("archive", "woo", "export", reference, "--out", str(out),
                                 ok=False)
    assert "exists" in one_error_line(result)
    assert out.read_bytes() == data
    # --json for scripts
    other = tmp_path / "tweede.zip"
    answer = (await archivist.run("archive", "woo", "export", reference, "--out", str(other),
                                  "--json")).json()
    assert answer["sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()
    assert answer["size"] == other.stat().st_size
    # an unknown reference: one error line, no file
    missing = tmp_path / "niets.zip"
    result = await archivist.run("archive", "woo", "export", "2026-onbekend", "--out",
                                 str(missing), ok=False)
    assert "no Woo request" in one_error_line(result)
    assert not missing.exists()
    # not an archivist: refused
    result = await clis["minister"].run("archive", "woo", "export", reference, "--out",
                                        str(missing), ok=False)
    assert "archivists only" in one_error_line(result)
    assert not missing.exists()


def _png(path: Path) -> bytes:
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 30, 30)).save(path, format="PNG")
    return path.read_bytes()


async def test_an_image_sent_with_the_cli_is_embedded(
    clis: dict[str, Cli], tmp_path: Path
) -> None:
    room = (await clis["minister"].run("create", f"Woo beeld {secrets.token_hex(3)}")).line
    word = f"grafiek{secrets.token_hex(4)}"
    image = tmp_path / f"{word}.png"
    data = _png(image)
    event_id = (await clis["minister"].run("send", room, "--file", str(image))).line
    archivist = clis["archivaris"]
    reference = f"2026-{secrets.token_hex(3)}"
    await archivist.run("archive", "woo", "create", reference, "--title", "Beeld",
                        "--room", room)
    for _ in range(60):
        case = (await archivist.run("archive", "woo", "show", reference, "--json")).json()
        if event_id in {d["event_id"] for d in case["documents"]}:
            break
        await asyncio.sleep(0.5)
    for d in case["documents"]:
        await archivist.run("archive", "woo", "assess", reference, d["event_id"],
                            "--decision", "openbaar")
    # the archiver fetches the encrypted file after the event: export until it is in
    pdf = b""
    for attempt in range(60):
        out = tmp_path / f"pakket-{attempt}.zip"
        await archivist.run("archive", "woo", "export", reference, "--out", str(out))
        with zipfile.ZipFile(out) as zf:
            pdf = zf.read(f"besluit-bijlage-{reference}.pdf")
        if hashlib.sha256(data).hexdigest() in _text(pdf):
            break
        await asyncio.sleep(1)
    text = _text(pdf)
    assert hashlib.sha256(data).hexdigest() in text
    assert f"{word}.png" in text
    images = [img for page in pypdf.PdfReader(io.BytesIO(pdf)).pages for img in page.images]
    assert len(images) == 1
    assert images[0].image is not None
    assert images[0].image.size == (40, 30)


def _text(pdf: bytes) -> str:
    return " ".join(
        "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages).split()
    )


async def test_a_progress_bar_on_a_terminal(clis: dict[str, Cli], tmp_path: Path) -> None:
    """On a terminal (a real pty) the export shows rich's progress bar with the document
    count; the final lines still give the SHA-256 and size."""
    import os
    import pty
    import sys

    room = (await clis["minister"].run("create", f"Woo tty {secrets.token_hex(3)}")).line
    word = f"voortgang{secrets.token_hex(4)}"
    event_id = (await clis["minister"].run("send", room, f"De {word} is goed")).line
    archivist = clis["archivaris"]
    await archived(archivist, word)
    reference = f"2026-{secrets.token_hex(3)}"
    await archivist.run("archive", "woo", "create", reference, "--title", "Tty",
                        "--room", room, "--query", word)
    await archivist.run("archive", "woo", "assess", reference, event_id,
                        "--decision", "openbaar")
    out = tmp_path / "tty.zip"
    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client_cli", "archive", "woo", "export", reference,
        "--out", str(out), cwd=archivist.home, env=archivist.env(),
        stdin=asyncio.subprocess.DEVNULL, stdout=slave, stderr=slave,
    )
    os.close(slave)

    def read_all() -> bytes:
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    shown = (await asyncio.wait_for(asyncio.to_thread(read_all), 120)).decode(errors="replace")
    assert await asyncio.wait_for(proc.wait(), 60) == 0, shown
    os.close(master)
    assert "1 documenten" in shown  # the progress bar's document count column
    assert "━" in shown  # rich's bar
    data = out.read_bytes()
    assert hashlib.sha256(data).hexdigest() in shown
