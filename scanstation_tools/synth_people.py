"""Fake members of the police staff for the synthetic ACR pages: names, ranks, units and districts (Hindi and
English), and the one person each seed stands for (:func:`synthetic_employee`).

Nothing here draws: :mod:`scanstation_tools.synth_forms` prints these particulars on the pages.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class SyntheticEmployee:
    """Fake particulars of one member of the police staff (all strings NFC)."""

    employee_code: str
    name: str
    name_hi: str
    father_name: str
    father_name_hi: str
    rank: str
    rank_hi: str
    unit: str
    unit_hi: str
    district: str
    district_hi: str
    posting: str
    posting_hi: str
    date_of_birth: date
    date_of_joining: date
    acr_period: str  # financial year, e.g. "2019-20"
    period_start: date
    period_end: date
    leave_days: int

    @property
    def period_text(self) -> str:
        """The period as printed on the form, e.g. "01-04-2019 to 31-03-2020"."""
        return f"{dmy(self.period_start)} to {dmy(self.period_end)}"


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def dmy(d: date) -> str:
    """A date as the form prints it: DD-MM-YYYY."""
    return f"{d.day:02d}-{d.month:02d}-{d.year}"


_FIRST_M = (
    ("Ramesh", "रमेश"),
    ("Suresh", "सुरेश"),
    ("Mahesh", "महेश"),
    ("Rajesh", "राजेश"),
    ("Anil", "अनिल"),
    ("Sunil", "सुनील"),
    ("Vijay", "विजय"),
    ("Sanjay", "संजय"),
    ("Manoj", "मनोज"),
    ("Pradeep", "प्रदीप"),
    ("Sandeep", "संदीप"),
    ("Rakesh", "राकेश"),
    ("Dinesh", "दिनेश"),
    ("Ashok", "अशोक"),
    ("Arvind", "अरविन्द"),
    ("Santosh", "संतोष"),
    ("Deepak", "दीपक"),
    ("Pankaj", "पंकज"),
    ("Vikas", "विकास"),
    ("Gaurav", "गौरव"),
    ("Satyendra", "सत्येन्द्र"),
    ("Jitendra", "जितेन्द्र"),
    ("Dharmendra", "धर्मेन्द्र"),
    ("Krishna", "कृष्ण"),
    ("Shailendra", "शैलेन्द्र"),
    ("Mohammad Arif", "मोहम्मद आरिफ"),
    ("Harpreet", "हरप्रीत"),
)
_FIRST_F = (
    ("Sunita", "सुनीता"),
    ("Anita", "अनीता"),
    ("Kavita", "कविता"),
    ("Pooja", "पूजा"),
    ("Priyanka", "प्रियंका"),
    ("Neha", "नेहा"),
    ("Rekha", "रेखा"),
    ("Meena", "मीना"),
    ("Shraddha", "श्रद्धा"),
    ("Jyoti", "ज्योति"),
)
_MIDDLE = (("Kumar", "कुमार"), ("Prasad", "प्रसाद"), ("Chandra", "चन्द्र"), ("Pratap", "प्रताप"), ("Nath", "नाथ"))
_SURNAMES = (
    ("Yadav", "यादव"),
    ("Sharma", "शर्मा"),
    ("Verma", "वर्मा"),
    ("Mishra", "मिश्र"),
    ("Tiwari", "तिवारी"),
    ("Pandey", "पाण्डेय"),
    ("Gupta", "गुप्ता"),
    ("Chauhan", "चौहान"),
    ("Maurya", "मौर्य"),
    ("Srivastava", "श्रीवास्तव"),
    ("Tripathi", "त्रिपाठी"),
    ("Dwivedi", "द्विवेदी"),
    ("Rathore", "राठौर"),
    ("Kushwaha", "कुशवाहा"),
    ("Prajapati", "प्रजापति"),
    ("Khan", "ख़ान"),
    ("Ansari", "अंसारी"),
    ("Saxena", "सक्सेना"),
    ("Agarwal", "अग्रवाल"),
    ("Bhardwaj", "भारद्वाज"),
    ("Singh", "सिंह"),
)
# (English, Hindi, relative frequency): constables far outnumber officers.
_RANKS = (
    ("Constable", "आरक्षी", 50),
    ("Head Constable", "मुख्य आरक्षी", 22),
    ("Sub-Inspector", "उप निरीक्षक", 16),
    ("Inspector", "निरीक्षक", 8),
    ("Deputy SP", "पुलिस उपाधीक्षक", 4),
)
# A fictitious state's districts (code, English, Hindi).
_DISTRICTS = (
    (11, "Suryanagar", "सूर्यनगर"),
    (12, "Vindhyapur", "विन्ध्यपुर"),
    (14, "Chandanpur", "चन्दनपुर"),
    (17, "Shivnagar", "शिवनगर"),
    (21, "Devgarh", "देवगढ़"),
    (23, "Ratnapur", "रत्नपुर"),
    (26, "Kusumganj", "कुसुमगंज"),
    (31, "Madhavpur", "माधवपुर"),
)
_UNIT_KINDS = (
    ("District Police {d}", "जनपद पुलिस {d}"),
    ("Reserve Police Lines {d}", "रिज़र्व पुलिस लाइन्स {d}"),
    ("Police Training School {d}", "पुलिस प्रशिक्षण विद्यालय {d}"),
    ("{n}th Bn PAC {d}", "{n}वीं वाहिनी पीएसी {d}"),
)
_THANAS = (
    ("Kotwali", "कोतवाली"),
    ("Civil Lines", "सिविल लाइन्स"),
    ("Sadar Bazar", "सदर बाजार"),
    ("Kamalganj", "कमलगंज"),
    ("Rampura", "रामपुरा"),
    ("Naya Ganj", "नया गंज"),
    ("Police Lines", "पुलिस लाइन्स"),
)


def synthetic_employee(seed: int) -> SyntheticEmployee:
    """The fake employee whose ACR file ``seed`` renders (same seed, same person)."""
    rng = random.Random(f"acr-employee:{seed}")
    female = rng.random() < 0.2
    first = rng.choice(_FIRST_F if female else _FIRST_M)
    surname = rng.choice(_SURNAMES)
    parts = [first]
    if not female and rng.random() < 0.5:
        parts.append(rng.choice(_MIDDLE))
    parts.append(surname)
    f_first = rng.choice(_FIRST_M)
    f_parts = [f_first, rng.choice(_MIDDLE), surname] if rng.random() < 0.5 else [f_first, surname]
    rank, rank_hi, _w = rng.choices(_RANKS, weights=[r[2] for r in _RANKS])[0]
    d_code, district, district_hi = rng.choice(_DISTRICTS)
    kind_en, kind_hi = rng.choice(_UNIT_KINDS)
    bn = rng.choice((3, 5, 7, 9, 11, 15, 27))
    thana, thana_hi = rng.choice(_THANAS)
    fy = rng.randint(2008, 2023)
    born = date(fy - rng.randint(24, 57), rng.randint(1, 12), rng.randint(1, 28))
    joined = date(born.year + rng.randint(19, 24), rng.randint(1, 12), rng.randint(1, 28))
    if joined.year > fy - 1:
        joined = date(fy - 1, joined.month, joined.day)
    return SyntheticEmployee(
        employee_code=f"MC-{d_code:02d}-{rng.randint(1, 999_999):06d}",
        name=" ".join(p[0] for p in parts),
        name_hi=_nfc(" ".join(p[1] for p in parts)),
        father_name=" ".join(p[0] for p in f_parts),
        father_name_hi=_nfc(" ".join(p[1] for p in f_parts)),
        rank=rank,
        rank_hi=_nfc(rank_hi),
        unit=kind_en.format(d=district, n=bn),
        unit_hi=_nfc(kind_hi.format(d=district_hi, n=bn)),
        district=district,
        district_hi=_nfc(district_hi),
        posting=f"Thana {thana}, {district}",
        posting_hi=_nfc(f"थाना {thana_hi}, {district_hi}"),
        date_of_birth=born,
        date_of_joining=joined,
        acr_period=f"{fy}-{(fy + 1) % 100:02d}",
        period_start=date(fy, 4, 1),
        period_end=date(fy + 1, 3, 31),
        leave_days=rng.randint(0, 45),
    )


def employee_fields(emp: SyntheticEmployee) -> dict[str, str]:
    """The index fields every page of ``emp``'s file carries (``SyntheticPage.fields``)."""
    return {
        "employee_code": emp.employee_code,
        "name": emp.name,
        "name_hi": emp.name_hi,
        "rank": emp.rank,
        "rank_hi": emp.rank_hi,
        "acr_period": emp.acr_period,
        "unit": emp.unit,
        "unit_hi": emp.unit_hi,
        "date_of_birth": dmy(emp.date_of_birth),
        "period": emp.period_text,
    }
