"""Where firmware files come from: a folder of OTA files, and an index in Zigbee2MQTT's format.

Both are local: nothing is ever downloaded. Every file is read and checked (`image.validate_image`,
plus what the index says about it: size, SHA-512, manufacturer code, image type, version, header
string) before it can be offered; a file that fails is listed as refused, with the reason.

Zigbee2MQTT's index (its `ota.zigbee_ota_override_index_location`) is a JSON list of objects::

    [{"url": "QBKG40LM_0029.ota", "fileVersion": 29, "fileSize": 289744, "manufacturerCode": 4447,
      "imageType": 6280, "sha512": "…", "modelId": "lumi.switch.b1nc01", "minFileVersion": 22,
      "maxFileVersion": 28, "hardwareVersionMin": 1, "hardwareVersionMax": 1,
      "manufacturerName": ["LUMI"], "otaHeaderString": "…", "releaseNotes": "…"}]

`url` (or `path`, or `fileName`) is a path relative to the index file's folder. An `http(s)://`
URL is never fetched: the file is looked for under its own name next to the index.

Only files in the two configured folders (the image folder and the index's own folder, with their
subfolders) are ever opened. Anything else is refused before it is opened, with one message that
says nothing about the target: a `..` in a path, an absolute path elsewhere, a `file://` URL, a
symbolic link that leads out of the folders, a device file or a fifo. Whoever can write the index
could otherwise learn through the refusal reasons whether any file on the machine exists, and how
it starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from z2m_qbkg40lm.ota.image import OtaHeader, OtaImageError, validate_image

IMAGE_SUFFIXES = (".ota", ".zigbee")
"""Files of the image folder that are read (other files there are left alone)."""
MAX_IMAGE_BYTES = 16 * 1024 * 1024
"""Larger files are refused unread: no Zigbee OTA image comes near this."""
MAX_INDEX_BYTES = 16 * 1024 * 1024
"""A larger index is refused unread."""
OUTSIDE_THE_FOLDERS = (
    "refused unopened: only files in ota.image_folder or in the index's own folder are used "
    "(no '..', no absolute path elsewhere, no file:// URL, no link that leads out of them)"
)
"""The one reason given for every path out of bounds: it says nothing about the target."""


@dataclass(frozen=True)
class FirmwareFile:
    """A checked upgrade file, with what its source says about where it may go."""

    path: Path
    name: str
    """How the source names it: the file name in the folder, the `url` in an index."""
    header: OtaHeader
    size: int
    sha512: str
    model_ids: tuple[str, ...] = ()
    manufacturer_names: tuple[str, ...] = ()
    min_file_version: int | None = None
    """Only for devices running at least this version (the index's `minFileVersion`)."""
    max_file_version: int | None = None
    min_hardware_version: int | None = None
    max_hardware_version: int | None = None
    release_notes: str | None = None


@dataclass(frozen=True)
class RefusedFile:
    """A file (or index entry) that will never be offered, and why."""

    where: str
    reason: str


@dataclass(frozen=True)
class Catalogue:
    """Everything the sources hold: usable files and refused ones."""

    files: tuple[FirmwareFile, ...] = ()
    refused: tuple[RefusedFile, ...] = ()


@dataclass
class _Checked:
    stamp: tuple[int, int]
    header: OtaHeader | None
    sha512: str
    size: int
    error: str | None


@dataclass
class FirmwareSources:
    """The configured folder and index; `scan()` reads them again each time (files may change).

    Checks are remembered per file (by size and modification time), so an unchanged file is not
    read again.
    """

    image_folder: Path | None = None
    index_file: Path | None = None
    _checked: dict[Path, _Checked] = field(default_factory=dict)

    def scan(self) -> Catalogue:
        """Read the sources now (blocking file I/O: call it in a thread)."""
        files: list[FirmwareFile] = []
        refused: list[RefusedFile] = []
        if self.image_folder is not None:
            self._scan_folder(self.image_folder, files, refused)
        if self.index_file is not None:
            self._scan_index(self.index_file, files, refused)
        return Catalogue(tuple(files), tuple(refused))

    def _folders(self) -> tuple[Path, ...]:
        """The folders files may be opened in: as configured, and with every link resolved."""
        configured = [
            folder
            for folder in (self.image_folder, None if self.index_file is None else self.index_file.parent)
            if folder is not None
        ]
        as_given = [Path(os.path.abspath(folder)) for folder in configured]
        resolved = [Path(os.path.realpath(folder)) for folder in configured]
        return tuple(dict.fromkeys(as_given + resolved))

    def _confined(self, path: Path) -> Path:
        """The path with every link resolved, when it stays in the folders; refused otherwise.

        Nothing is opened here, and the refusal is the same whether the target exists or not.
        """
        folders = self._folders()
        if not _inside(Path(os.path.abspath(path)), folders):
            raise _Refused(OUTSIDE_THE_FOLDERS)
        real = Path(os.path.realpath(path))
        if not _inside(real, folders):
            raise _Refused(OUTSIDE_THE_FOLDERS)
        return real

    # --- the folder ------------------------------------------------------------------------------

    def _scan_folder(self, folder: Path, files: list[FirmwareFile], refused: list[RefusedFile]) -> None:
        try:
            entries = sorted(folder.iterdir())
        except OSError as exc:
            refused.append(RefusedFile(str(folder), f"cannot read the image folder ({exc.strerror or exc})"))
            return
        for entry in entries:
            if entry.name.startswith(".") or entry.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if entry.is_dir() and not entry.is_symlink():
                continue
            try:
                path = self._confined(entry)
            except _Refused as exc:
                refused.append(RefusedFile(str(entry), str(exc)))
                continue
            checked = self._check(path)
            if checked.error is not None or checked.header is None:
                refused.append(RefusedFile(str(entry), checked.error or "unreadable"))
                continue
            files.append(
                FirmwareFile(
                    path=path,
                    name=entry.name,
                    header=checked.header,
                    size=checked.size,
                    sha512=checked.sha512,
                    min_hardware_version=checked.header.min_hardware_version,
                    max_hardware_version=checked.header.max_hardware_version,
                )
            )

    # --- the index -------------------------------------------------------------------------------

    def _scan_index(self, index: Path, files: list[FirmwareFile], refused: list[RefusedFile]) -> None:
        try:
            entries = json.loads(_read_regular_file(index, MAX_INDEX_BYTES, follow_links=True))
        except OSError as exc:
            refused.append(RefusedFile(str(index), f"cannot read the index ({exc.strerror or exc})"))
            return
        except ValueError as exc:
            refused.append(RefusedFile(str(index), f"the index is not valid JSON ({exc})"))
            return
        if not isinstance(entries, list):
            refused.append(RefusedFile(str(index), "the index must be a JSON list of image objects"))
            return
        for number, entry in enumerate(entries, start=1):
            where = f"{index} entry {number}"
            try:
                files.append(self._index_entry(index, entry, where))
            except _Refused as exc:
                refused.append(RefusedFile(where, str(exc)))

    def _index_entry(self, index: Path, entry: Any, where: str) -> FirmwareFile:
        if not isinstance(entry, dict):
            raise _Refused("not a JSON object")
        location = next(
            (entry[k] for k in ("url", "path", "fileName") if isinstance(entry.get(k), str)), None
        )
        if not location:
            raise _Refused("no url (the image file's path, relative to the index)")
        path = self._confined(_local_path(index.parent, location, entry.get("fileName")))
        checked = self._check(path)
        if checked.error is not None or checked.header is None:
            raise _Refused(f"{path}: {checked.error}")
        header = checked.header
        expected = {
            "fileVersion": header.file_version,
            "manufacturerCode": header.manufacturer_code,
            "imageType": header.image_type,
            "fileSize": checked.size,
        }
        for key, actual in expected.items():
            value = entry.get(key)
            if value is None:
                continue
            if not _is_int(value):
                raise _Refused(f"{key} must be a number, not {value!r}")
            if value != actual:
                subject = "the file has" if key == "fileSize" else "the file's header says"
                raise _Refused(f"{path}: the index says {key} {value} but {subject} {actual}")
        sha512 = entry.get("sha512")
        if sha512 is not None and (not isinstance(sha512, str) or sha512.lower() != checked.sha512):
            raise _Refused(f"{path}: SHA-512 differs from the index's (corrupt or replaced file)")
        header_string = entry.get("otaHeaderString")
        if isinstance(header_string, str) and header_string.rstrip("\x00") != header.header_string:
            raise _Refused(
                f"{path}: the index says header string {header_string!r} but the file has "
                f"{header.header_string!r}"
            )
        numbers: dict[str, int | None] = {}
        for key in ("minFileVersion", "maxFileVersion", "hardwareVersionMin", "hardwareVersionMax"):
            value = entry.get(key)
            if value is not None and not _is_int(value):
                raise _Refused(f"{key} must be a number, not {value!r}")
            numbers[key] = value
        model = entry.get("modelId")
        names = entry.get("manufacturerName")
        if model is not None and not isinstance(model, str):
            raise _Refused(f"modelId must be a text, not {model!r}")
        if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            raise _Refused(f"manufacturerName must be a list of texts, not {names!r}")
        notes = entry.get("releaseNotes")
        return FirmwareFile(
            path=path,
            name=location,
            header=header,
            size=checked.size,
            sha512=checked.sha512,
            model_ids=(model,) if model else (),
            manufacturer_names=tuple(names or ()),
            min_file_version=numbers["minFileVersion"],
            max_file_version=numbers["maxFileVersion"],
            min_hardware_version=_first(numbers["hardwareVersionMin"], header.min_hardware_version),
            max_hardware_version=_first(numbers["hardwareVersionMax"], header.max_hardware_version),
            release_notes=notes if isinstance(notes, str) and notes else None,
        )

    # --- one file --------------------------------------------------------------------------------

    def _check(self, path: Path) -> _Checked:
        """Read and check one file of the folders (remembered until its size or modification time
        changes). `path` has no links left (see `_confined`)."""
        try:
            status = path.lstat()
        except OSError as exc:
            return _Checked((0, 0), None, "", 0, f"cannot read ({exc.strerror or exc})")
        if not stat.S_ISREG(status.st_mode):
            # A fifo would block the read, a device file could do anything when opened.
            return _Checked((0, 0), None, "", 0, "not a regular file, not opened")
        stamp = (status.st_size, status.st_mtime_ns)
        known = self._checked.get(path)
        if known is not None and known.stamp == stamp:
            return known
        checked = _check_file(path, stamp)
        self._checked[path] = checked
        return checked


class _Refused(Exception):
    """An index entry that cannot be used."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _first(*values: int | None) -> int | None:
    return next((value for value in values if value is not None), None)


def _inside(path: Path, folders: tuple[Path, ...]) -> bool:
    return any(path.is_relative_to(folder) for folder in folders)


def _local_path(root: Path, location: str, file_name: Any) -> Path:
    """An index entry's file: a path (relative to the index), never a download.

    Only a name is worked out here; whether it may be opened is `FirmwareSources._confined`'s call.
    """
    parts = urlsplit(location)
    if parts.scheme in ("http", "https"):
        name = file_name if isinstance(file_name, str) and file_name else unquote(Path(parts.path).name)
        local = root / Path(name).name
        # Not followed: a link in the folder is `_confined`'s to judge, whatever it leads to.
        if not (local.is_symlink() or local.is_file()):
            raise _Refused(
                f"{location} is a download and this daemon never downloads: save the file as {local}"
            )
        return local
    if parts.scheme == "file":
        raise _Refused(OUTSIDE_THE_FOLDERS)
    if parts.scheme and len(parts.scheme) > 1:
        raise _Refused(f"{location}: only local paths are supported")
    if ".." in Path(location).parts:
        # Even one that comes back: through a link it may lead anywhere on the way.
        raise _Refused(OUTSIDE_THE_FOLDERS)
    return root / location


def _read_regular_file(path: Path, limit: int, *, follow_links: bool = False) -> bytes:
    """The file's bytes, when it is a regular file of at most `limit` bytes (OSError otherwise).

    Opened without blocking and, unless told, without following a link, then checked again
    through the open descriptor: a file swapped for a fifo, a device or a link after it was
    looked at is not read.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    status = path.stat() if follow_links else path.lstat()
    if not stat.S_ISREG(status.st_mode):
        raise OSError(0, "not a regular file, not opened")
    descriptor = os.open(path, flags)
    with os.fdopen(descriptor, "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise OSError(0, "not a regular file")
        if status.st_size > limit:
            raise OSError(0, f"{status.st_size} bytes is too large")
        return file.read(limit + 1)


def _check_file(path: Path, stamp: tuple[int, int]) -> _Checked:
    size = stamp[0]
    if size > MAX_IMAGE_BYTES:
        return _Checked(stamp, None, "", size, f"{size} bytes is too large for an OTA image")
    try:
        data = _read_regular_file(path, MAX_IMAGE_BYTES)
    except OSError as exc:
        return _Checked(stamp, None, "", size, f"cannot read ({exc.strerror or exc})")
    try:
        header = validate_image(data)
    except OtaImageError as exc:
        return _Checked(stamp, None, "", len(data), str(exc))
    return _Checked(stamp, header, hashlib.sha512(data).hexdigest(), len(data), None)
