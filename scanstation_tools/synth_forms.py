"""What is printed and written on each page of a synthetic ACR file: the form's pages (personal particulars,
the reporting officer's assessment, the reviewing and accepting officers' remarks), a printed instructions sheet in
one script, or one isolated mark; filled in by hand, signed and stamped.
"""

from __future__ import annotations

import random
from datetime import timedelta

import numpy as np

from scanstation_tools.synth_drawing import Sheet, handwrite, signature, stamp, tick
from scanstation_tools.synth_people import SyntheticEmployee, dmy

_STATE_HI = "मध्यांचल प्रदेश पुलिस"
_STATE_EN = "MADHYANCHAL PRADESH POLICE"
_ATTRIBUTES = (
    "सत्यनिष्ठा / Integrity",
    "अनुशासन / Discipline",
    "कार्य का ज्ञान / Knowledge of work",
    "जनता के प्रति व्यवहार / Behaviour with public",
    "अपराध नियंत्रण / Crime control",
    "शारीरिक स्वास्थ्य / Physical fitness",
    "आज्ञापालन / Obedience",
    "नेतृत्व क्षमता / Leadership",
    "समय की पाबंदी / Punctuality",
    "कानून का ज्ञान / Knowledge of law",
)
_GRADES = ("उत्कृष्ट", "अति उत्तम", "उत्तम", "संतोषजनक", "खराब")
_REMARKS_EN = (
    "Hardworking and disciplined.",
    "Integrity is beyond doubt.",
    "Good knowledge of law and procedure.",
    "Behaviour with the public is courteous.",
    "Needs improvement in case diary work.",
    "Performed bandobast duties well.",
    "Punctual and obedient.",
)
_REMARKS_HI = (
    "कार्य एवं आचरण अच्छा है।",
    "सत्यनिष्ठा संदेह से परे है।",
    "अनुशासित एवं कर्तव्यनिष्ठ कर्मचारी।",
    "जनता के साथ व्यवहार विनम्र है।",
    "विवेचना कार्य में सुधार अपेक्षित।",
    "बन्दोबस्त ड्यूटी में अच्छा कार्य किया।",
)


def _remark(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return " ".join(rng.sample(_REMARKS_HI, rng.randint(2, 3)))
    return " ".join(rng.sample(_REMARKS_EN, rng.randint(2, 3)))


def _footer(s: Sheet, page_no: int) -> None:
    s.text(105, 286, f"पृष्ठ {page_no} / Page {page_no}", 9, align="center")


def _header_small(s: Sheet, emp: SyntheticEmployee) -> None:
    s.text(15, 14, f"कर्मचारी संख्या / Employee Code: {emp.employee_code}", 9)
    s.text(195, 14, f"वर्ष / Year: {emp.acr_period}", 9, align="right")
    s.text(15, 20, f"नाम / Name: {emp.name}", 9)
    s.text(195, 20, "गोपनीय / CONFIDENTIAL", 9, bold=True, align="right")
    s.rule(15, 23, 195, 23, 0.4)


def _page_particulars(s: Sheet, emp: SyntheticEmployee, rng: random.Random, nrng: np.random.Generator) -> None:
    s.text(15, 14, "प्रपत्र-1 / Form No. 1", 9)
    s.text(195, 14, "गोपनीय / CONFIDENTIAL", 10, bold=True, align="right")
    s.text(105, 27, _STATE_HI, 17, bold=True, align="center")
    s.text(105, 35, _STATE_EN, 14, bold=True, align="center")
    s.text(105, 45, "वार्षिक गोपनीय प्रविष्टि / ANNUAL CONFIDENTIAL REPORT", 13, bold=True, align="center")
    s.text(105, 53, f"वर्ष / Year: {emp.acr_period}", 11, align="center")
    s.rule(15, 57, 195, 57, 0.5)
    s.text(15, 65, "भाग-1 : व्यक्तिगत विवरण / PART-I : PERSONAL PARTICULARS", 11, bold=True)
    rows = [
        ("क्रम / No.", "विवरण / Particulars", "प्रविष्टि / Entry"),
        ("1.", "कर्मचारी संख्या / Employee Code", emp.employee_code),
        ("2.", "नाम / Name", emp.name),
        ("3.", "नाम (हिन्दी में) / Name in Hindi", emp.name_hi),
        ("4.", "पिता का नाम / Father's Name", emp.father_name),
        ("5.", "पद / Rank", f"{emp.rank} / {emp.rank_hi}"),
        ("6.", "जन्म तिथि / Date of Birth", dmy(emp.date_of_birth)),
        ("7.", "भर्ती तिथि / Date of Joining", dmy(emp.date_of_joining)),
        ("8.", "इकाई / Unit", emp.unit),
        ("9.", "तैनाती / Posting", emp.posting),
        ("10.", "अवधि / Period of report", emp.period_text),
        ("11.", "अवकाश / Leave availed", f"{emp.leave_days} दिन / {emp.leave_days} days"),
    ]
    cols = (15.0, 32.0, 100.0, 195.0)
    top, row_h = 70.0, 10.5
    for i, row in enumerate(rows):
        y0 = top + i * row_h
        s.rule(cols[0], y0, cols[-1], y0)
        for c, cell in enumerate(row):
            s.text(cols[c] + 2, y0 + 7.0, cell, 10, bold=(i == 0))
    bottom = top + len(rows) * row_h
    s.rule(cols[0], bottom, cols[-1], bottom)
    for x in cols:
        s.rule(x, top, x, bottom)
    y = bottom + 12
    s.text(15, y, "भाग-2 : स्व-मूल्यांकन / PART-II : SELF APPRAISAL", 11, bold=True)
    s.text(15, y + 6, "(प्रतिवेदित कर्मचारी द्वारा भरा जाए / To be filled in by the officer reported upon)", 9)
    s.box(15, y + 9, 195, y + 52)
    handwrite(s, rng, nrng, 19, y + 18, _remark(rng), 170, max_lines=4)
    y += 64
    signed = emp.period_end + timedelta(days=rng.randint(5, 40))
    s.text(15, y, f"स्थान / Place: {emp.district}", 10)
    s.text(195, y, "हस्ताक्षर / Signature", 10, align="right")
    signature(s, rng, 150, y - 13, 42, 9)
    s.text(15, y + 7, f"दिनांक / Date: {dmy(signed)}", 10)
    s.text(195, y + 7, f"{emp.rank} / {emp.rank_hi}", 10, align="right")


def _page_assessment(s: Sheet, emp: SyntheticEmployee, rng: random.Random, nrng: np.random.Generator) -> None:
    _header_small(s, emp)
    s.text(105, 32, "भाग-3 : प्रतिवेदक अधिकारी द्वारा मूल्यांकन", 12, bold=True, align="center")
    s.text(105, 38, "PART-III : ASSESSMENT BY THE REPORTING OFFICER", 11, bold=True, align="center")
    cols = [15.0, 25.0, 105.0] + [105.0 + 18.0 * (i + 1) for i in range(len(_GRADES))]
    top, row_h = 44.0, 10.0
    attributes = _ATTRIBUTES[: rng.randint(7, len(_ATTRIBUTES))]
    s.text(cols[0] + 1.5, top + 6.5, "क्रम", 9, bold=True)
    s.text(cols[1] + 2, top + 6.5, "गुण / Attribute", 9, bold=True)
    for g, grade in enumerate(_GRADES):
        s.text((cols[3 + g - 1] + cols[3 + g]) / 2, top + 6.5, grade, 8, bold=True, align="center")
    for i, attr in enumerate(attributes, start=1):
        y0 = top + i * row_h
        s.text(cols[0] + 2, y0 + 6.5, f"{i}.", 10)
        s.text(cols[1] + 2, y0 + 6.5, attr, 10)
        g = min(len(_GRADES) - 1, max(0, round(rng.gauss(1.3, 0.9))))
        tick(s, rng, (cols[2 + g] + cols[3 + g]) / 2, y0 + row_h / 2)
    bottom = top + (len(attributes) + 1) * row_h
    for i in range(len(attributes) + 2):
        s.rule(cols[0], top + i * row_h, cols[-1], top + i * row_h)
    for x in cols:
        s.rule(x, top, x, bottom)
    y = bottom + 6
    s.text(15, y, "उत्कृष्ट = Outstanding, अति उत्तम = Very Good, उत्तम = Good,", 8)
    s.text(15, y + 4.5, "संतोषजनक = Satisfactory, खराब = Poor", 8)
    y += 14
    s.text(15, y, "प्रतिवेदक अधिकारी की टिप्पणी / Remarks of the Reporting Officer", 11, bold=True)
    s.box(15, y + 3, 195, y + 43)
    handwrite(s, rng, nrng, 19, y + 12, _remark(rng), 170, max_lines=4)
    y += 53
    s.text(15, y, "समग्र श्रेणी / Overall Grading:", 10)
    handwrite(s, rng, nrng, 75, y, rng.choice(("Very Good", "Good", "उत्तम", "अति उत्तम", "Outstanding")), 60)
    y += 9
    s.text(15, y, "सत्यनिष्ठा प्रमाणित / Integrity certified:", 10)
    handwrite(s, rng, nrng, 90, y, rng.choice(("हाँ", "Yes", "Certified")), 40)
    y += 32
    signature(s, rng, 145, y - 14, 42, 9)
    stamp(s, rng, nrng, 112, y - 16, ("कार्यालय", emp.district_hi), 24)
    s.text(195, y, "प्रतिवेदक अधिकारी के हस्ताक्षर / Signature of Reporting Officer", 9, align="right")
    signed = emp.period_end + timedelta(days=rng.randint(20, 70))
    s.text(15, y, f"दिनांक / Date: {dmy(signed)}", 10)


def _page_review(s: Sheet, emp: SyntheticEmployee, rng: random.Random, nrng: np.random.Generator) -> None:
    _header_small(s, emp)
    s.text(105, 32, "भाग-4 : समीक्षक अधिकारी की टिप्पणी", 12, bold=True, align="center")
    s.text(105, 38, "PART-IV : REMARKS OF THE REVIEWING OFFICER", 11, bold=True, align="center")
    s.text(15, 48, "1. क्या आप प्रतिवेदक अधिकारी के मूल्यांकन से सहमत हैं?", 10)
    s.text(15, 54, "Do you agree with the assessment of the Reporting Officer?", 10)
    handwrite(s, rng, nrng, 140, 54, rng.choice(("हाँ", "Yes", "सहमत")), 50)
    s.text(15, 63, "2. टिप्पणी / Remarks", 10)
    s.box(15, 66, 195, 106)
    handwrite(s, rng, nrng, 19, 75, _remark(rng), 170, max_lines=4)
    signature(s, rng, 145, 110, 42, 9)
    stamp(s, rng, nrng, 118, 114, ("पुलिस अधीक्षक", emp.district_hi), 26)
    s.text(195, 128, "समीक्षक अधिकारी के हस्ताक्षर / Signature of Reviewing Officer", 9, align="right")
    s.text(15, 128, f"दिनांक / Date: {dmy(emp.period_end + timedelta(days=rng.randint(40, 90)))}", 10)
    s.rule(15, 136, 195, 136, 0.4)
    s.text(105, 146, "भाग-5 : स्वीकर्ता अधिकारी", 12, bold=True, align="center")
    s.text(105, 152, "PART-V : ACCEPTING AUTHORITY", 11, bold=True, align="center")
    s.text(15, 162, "स्वीकर्ता अधिकारी की टिप्पणी / Remarks of the Accepting Authority", 10)
    s.box(15, 165, 195, 205)
    handwrite(s, rng, nrng, 19, 174, _remark(rng), 170, max_lines=4)
    s.text(15, 214, "अंतिम श्रेणी / Final Grading:", 10)
    handwrite(s, rng, nrng, 70, 214, rng.choice(("अति उत्तम", "उत्तम", "Very Good", "Good")), 60)
    signature(s, rng, 145, 222, 42, 9)
    stamp(s, rng, nrng, 118, 226, ("उप महानिरीक्षक", "परिक्षेत्र"), 26)
    s.text(195, 240, "स्वीकर्ता अधिकारी के हस्ताक्षर / Signature of Accepting Authority", 9, align="right")
    s.text(15, 240, f"दिनांक / Date: {dmy(emp.period_end + timedelta(days=rng.randint(90, 150)))}", 10)


_INSTRUCTIONS_HI = (
    "वार्षिक गोपनीय प्रविष्टि प्रत्येक वित्तीय वर्ष के लिए अलग से लिखी जाएगी।",
    "प्रतिवेदक अधिकारी अपनी टिप्पणी स्पष्ट एवं निष्पक्ष रूप से अंकित करेंगे।",
    "प्रतिकूल प्रविष्टि की सूचना संबंधित कर्मचारी को लिखित रूप में दी जाएगी।",
    "सत्यनिष्ठा प्रमाणित न किए जाने की दशा में कारण का उल्लेख आवश्यक है।",
    "समीक्षक अधिकारी असहमत होने पर अपनी असहमति के कारण लिखेंगे।",
    "यह प्रपत्र गोपनीय है तथा इसे सुरक्षित अभिरक्षा में रखा जाएगा।",
    "प्रविष्टि निर्धारित समय-सीमा के भीतर पूर्ण की जानी चाहिए।",
    "अधूरी प्रविष्टि को पूर्ण कराने हेतु वापस किया जाएगा।",
    "स्वीकर्ता अधिकारी की टिप्पणी अंतिम मानी जाएगी।",
)
_INSTRUCTIONS_EN = (
    "The annual confidential report shall be written separately for each financial year.",
    "The reporting officer shall record remarks clearly and objectively.",
    "Any adverse entry shall be communicated to the officer reported upon in writing.",
    "If integrity is not certified, the reasons must be recorded.",
    "The reviewing officer shall give reasons when differing from the reporting officer.",
    "This form is confidential and shall be kept in safe custody.",
    "The report shall be completed within the prescribed time limit.",
    "Incomplete reports will be returned for completion.",
    "The remarks of the accepting authority shall be final.",
)


def _page_instructions(s: Sheet, hindi: bool, rng: random.Random, page_no: int) -> None:
    """A printed instructions sheet in one script: numbered items, word-wrapped."""
    s.text(105, 30, "निर्देश" if hindi else "INSTRUCTIONS", 16, bold=True, align="center")
    items = list(_INSTRUCTIONS_HI if hindi else _INSTRUCTIONS_EN)
    rng.shuffle(items)
    y, size, width = 46.0, 13.0, 170.0
    for n, item in enumerate(items, start=1):
        words = f"{n}. {item}".split()
        line = words[0]
        for word in words[1:]:
            if s.text_width(f"{line} {word}", size) > s.px(width):
                s.text(20, y, line, size)
                y += 9.0
                line = word
            else:
                line = f"{line} {word}"
        s.text(20, y, line, size)
        y += 14.0
    s.text(105, 286, f"पृष्ठ {page_no}" if hindi else f"Page {page_no}", 9, align="center")


def draw_content(
    sheet: Sheet, content: str, page_no: int, emp: SyntheticEmployee, rng: random.Random, nrng: np.random.Generator
) -> None:
    """Draw page ``page_no`` of ``emp``'s file, or the ``content`` a PageSpec names instead of the form."""
    if content in ("hindi", "english"):
        _page_instructions(sheet, content == "hindi", rng, page_no)
        return
    if content == "signature":
        signature(sheet, rng, rng.uniform(30, 140), rng.uniform(60, 240), rng.uniform(35, 50), rng.uniform(7, 11))
        return
    if content == "line":
        sheet.text(rng.uniform(15, 40), rng.uniform(40, 250), f"कर्मचारी संख्या / Employee Code: {emp.employee_code}", 10)
        return
    if content == "stamp":
        stamp(sheet, rng, nrng, rng.uniform(40, 170), rng.uniform(50, 250), ("कार्यालय", emp.district_hi), 22)
        return
    if page_no == 1:
        _page_particulars(sheet, emp, rng, nrng)
    elif page_no % 2 == 0:
        _page_assessment(sheet, emp, rng, nrng)
    else:
        _page_review(sheet, emp, rng, nrng)
    _footer(sheet, page_no)
