"""One exception root for the whole station; each class carries the process exit code the CLI maps it to."""

from __future__ import annotations


class ScanStationError(Exception):
    """Root of every error the station raises on purpose.

    ``exit_code`` is consumed at exactly one boundary (``scanstation.cli``); the UI shows ``str(err)``.
    Messages should tell the person at the station what to do next.
    """

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(ScanStationError):
    """A configuration file is missing, unreadable or invalid (names file, key and reason)."""

    exit_code = 3


class InputError(ScanStationError):
    """An input file (image, PDF, TIFF) is unreadable, corrupt, too large or of an unsupported kind."""

    exit_code = 4

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # picklable, so it can cross a process pool or the SANE child's pipe
        return (type(self), (self.source, self.reason))


class UnlockError(ScanStationError):
    """The station identity could not be unlocked (wrong passphrase, missing sealed key)."""

    exit_code = 5


class VaultIntegrityError(ScanStationError):
    """A vault object is missing, unreadable or does not match its recorded hash."""

    exit_code = 6


class StateError(ScanStationError):
    """An operation is not allowed in the current state (batch state machine, station lock)."""

    exit_code = 7


class OcrError(ScanStationError):
    """Tesseract crashed, timed out or produced no usable output for a page."""

    exit_code = 8


class ExternalToolError(ScanStationError):
    """An external program (tesseract, age, ...) is missing or failed."""

    exit_code = 9


class DeviceError(ScanStationError):
    """A scanner problem a person can act on; carries English and Hindi messages.

    Subclasses map SANE statuses; ``pages_received`` says how many pages of the current scan
    were delivered before the fault (they are kept and the batch can resume).
    """

    exit_code = 10
    message_en = "The scanner reported an error. Check the scanner and try again."
    message_hi = "स्कैनर में त्रुटि आई है। स्कैनर जाँचें और फिर से प्रयास करें।"

    def __init__(self, detail: str = "", *, device: str = "", pages_received: int = 0) -> None:
        text = f"{self.message_en} / {self.message_hi}"
        if device:
            text = f"{device}: {text}"
        if detail:
            text = f"{text} ({detail})"
        super().__init__(text)
        self.detail = detail
        self.device = device
        self.pages_received = pages_received

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_device_error, (type(self), self.detail, self.device, self.pages_received))


def _rebuild_device_error(cls: type[DeviceError], detail: str, device: str, pages_received: int) -> DeviceError:
    return cls(detail, device=device, pages_received=pages_received)


class FeederEmpty(DeviceError):
    exit_code = 11
    message_en = "The document feeder is empty. Load the pages and press Scan again."
    message_hi = "फीडर खाली है। पन्ने लगाएँ और फिर से स्कैन दबाएँ।"


class PaperJam(DeviceError):
    exit_code = 12
    message_en = "Paper jam. Open the feeder, remove the jammed sheet, put it back on top of the stack and resume."
    message_hi = "कागज़ फँस गया है। फीडर खोलें, फँसा पन्ना निकालें, उसे गड्डी के ऊपर रखें और स्कैन जारी रखें।"


class CoverOpen(DeviceError):
    exit_code = 13
    message_en = "The scanner cover is open. Close it and resume."
    message_hi = "स्कैनर का ढक्कन खुला है। उसे बंद करें और स्कैन जारी रखें।"


class DeviceBusy(DeviceError):
    exit_code = 14
    message_en = "The scanner is busy. Wait a moment and try again."
    message_hi = "स्कैनर व्यस्त है। थोड़ी देर रुककर फिर से प्रयास करें।"


class DeviceOffline(DeviceError):
    exit_code = 15
    message_en = "The scanner is not responding (I/O error). Check its cable and power, then resume."
    message_hi = "स्कैनर जवाब नहीं दे रहा (I/O त्रुटि)। केबल और बिजली जाँचें, फिर स्कैन जारी रखें।"


class DeviceNotFound(DeviceError):
    exit_code = 16
    message_en = "The scanner was not found. Check that it is switched on and connected."
    message_hi = "स्कैनर नहीं मिला। जाँचें कि वह चालू है और जुड़ा हुआ है।"


class DeviceCrashed(DeviceError):
    exit_code = 17
    message_en = "The scanner driver stopped unexpectedly. Pages already received are kept; resume the scan."
    message_hi = "स्कैनर ड्राइवर अचानक बंद हो गया। प्राप्त पन्ने सुरक्षित हैं; स्कैन जारी रखें।"


class ScanCancelled(ScanStationError):
    """The operator cancelled; silent in the UI, exit 130 in the CLI."""

    exit_code = 130


class PackageError(ScanStationError):
    """A sealed batch package is malformed, fails its signature or hash checks, or cannot be built."""

    exit_code = 18


class UploadError(ScanStationError):
    """The portal could not be reached or kept failing (network, 5xx, timeouts); retrying may help."""

    exit_code = 19


class PortalRejected(UploadError):
    """The portal (or a reply claiming to be it) refused the upload for good, or replied nonsense.

    Covers hostile replies too: bad offsets, oversized headers, redirects to another host.
    Retrying the same bytes will not help; a person must look at the reason.
    """

    exit_code = 20


class ReceiptInvalid(ScanStationError):
    """The portal's receipt is missing, malformed, or not signed by the configured portal key.

    The batch stays on the station (nothing is purged without a valid receipt).
    """

    exit_code = 21


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected error",
    2: "command-line usage error",
    3: "configuration error (ConfigError)",
    4: "bad input file (InputError)",
    5: "station identity could not be unlocked (UnlockError)",
    6: "vault integrity problem (VaultIntegrityError)",
    7: "operation not allowed in this state (StateError)",
    8: "OCR failed (OcrError)",
    9: "external tool missing or failed (ExternalToolError)",
    10: "scanner error (DeviceError)",
    11: "feeder empty (FeederEmpty)",
    12: "paper jam (PaperJam)",
    13: "cover open (CoverOpen)",
    14: "scanner busy (DeviceBusy)",
    15: "scanner offline / I/O error (DeviceOffline)",
    16: "scanner not found (DeviceNotFound)",
    17: "scanner driver crashed (DeviceCrashed)",
    18: "batch package malformed or failed verification (PackageError)",
    19: "upload failed, portal unreachable or erroring (UploadError)",
    20: "portal refused the upload or replied nonsense (PortalRejected)",
    21: "portal receipt missing or not validly signed (ReceiptInvalid)",
    130: "cancelled",
}
