"""The station's exception root and the errors a scanner back end raises.

They live here, in the lowest layer, because drivers raise them and everything above catches them
(``scanstation.errors`` re-exports them beside the station's own).  Each class carries the process exit
code the CLI maps it to and the one-line ``summary`` that ``scanstation exit-codes`` and the README list.
"""

from __future__ import annotations


class ScanStationError(Exception):
    """Root of every error the station raises on purpose.

    ``exit_code`` is consumed at exactly one boundary (``scanstation.cli.main``); the UI shows ``str(err)``.
    Messages should tell the person at the station what to do next.
    """

    exit_code: int = 1
    summary = "unexpected error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(ScanStationError):
    """An input file (image, PDF, TIFF) is unreadable, corrupt, too large or of an unsupported kind."""

    exit_code = 4
    summary = "bad input file (corrupt, truncated, too large, unsupported); the good ones were still captured"

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # picklable, so it can cross a process pool or the SANE child's pipe
        return (type(self), (self.source, self.reason))


class ExternalToolError(ScanStationError):
    """An external program (tesseract, age, ...) is missing or failed."""

    exit_code = 9
    summary = "external tool missing or failed"


class DeviceError(ScanStationError):
    """A scanner problem a person can act on; carries English and Hindi messages.

    Subclasses map SANE statuses; ``pages_received`` says how many pages of the current scan
    were delivered before the fault (they are kept and the batch can resume).
    """

    exit_code = 10
    summary = "scanner error (other)"
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
    summary = "feeder empty"
    message_en = "The document feeder is empty. Load the pages and press Scan again."
    message_hi = "फीडर खाली है। पन्ने लगाएँ और फिर से स्कैन दबाएँ।"


class PaperJam(DeviceError):
    exit_code = 12
    summary = "paper jam"
    message_en = "Paper jam. Open the feeder, remove the jammed sheet, put it back on top of the stack and resume."
    message_hi = "कागज़ फँस गया है। फीडर खोलें, फँसा पन्ना निकालें, उसे गड्डी के ऊपर रखें और स्कैन जारी रखें।"


class CoverOpen(DeviceError):
    exit_code = 13
    summary = "cover open"
    message_en = "The scanner cover is open. Close it and resume."
    message_hi = "स्कैनर का ढक्कन खुला है। उसे बंद करें और स्कैन जारी रखें।"


class DeviceBusy(DeviceError):
    exit_code = 14
    summary = "scanner busy"
    message_en = "The scanner is busy. Wait a moment and try again."
    message_hi = "स्कैनर व्यस्त है। थोड़ी देर रुककर फिर से प्रयास करें।"


class DeviceOffline(DeviceError):
    exit_code = 15
    summary = "scanner offline / I/O error"
    message_en = "The scanner is not responding (I/O error). Check its cable and power, then resume."
    message_hi = "स्कैनर जवाब नहीं दे रहा (I/O त्रुटि)। केबल और बिजली जाँचें, फिर स्कैन जारी रखें।"


class DeviceNotFound(DeviceError):
    exit_code = 16
    summary = "scanner not found"
    message_en = "The scanner was not found. Check that it is switched on and connected."
    message_hi = "स्कैनर नहीं मिला। जाँचें कि वह चालू है और जुड़ा हुआ है।"


class DeviceCrashed(DeviceError):
    exit_code = 17
    summary = "scanner driver crashed"
    message_en = "The scanner driver stopped unexpectedly. Pages already received are kept; resume the scan."
    message_hi = "स्कैनर ड्राइवर अचानक बंद हो गया। प्राप्त पन्ने सुरक्षित हैं; स्कैन जारी रखें।"


class ScanCancelled(ScanStationError):
    """The operator cancelled; silent in the UI, exit 130 in the CLI."""

    exit_code = 130
    summary = "cancelled"
