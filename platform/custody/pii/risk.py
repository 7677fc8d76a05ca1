"""Risk ratings for PII findings, from pii-codex (Milne et al. 2016; Schwartz and Solove 2011).

pii-codex rates each of its PII types on a three-step identifiability scale: 1 non-identifiable,
2 semi-identifiable, 3 identifiable. It also files each type under an information category
(Milne et al.'s cluster: Contact Information, Financial Information, Secure Identifiers, ...) and
under NIST, DHS and HIPAA categories. A document's risk score is the mean level of its
detections (1 when it has none); a collection's score is the mean of its documents' scores.

custody's entity names are presidio's plus three of its own (secrets). `CODEX_TYPES` maps each
explicitly to a pii-codex type: presidio's names as pii-codex's own presidio adapter converts
them (LOCATION -> ADDRESS, DATE_TIME -> DATE, CREDIT_CARD -> CREDIT_CARD_NUMBER, ...), the
secrets to the types pii-codex has for credentials. An entity type that is not in the table
(a third-party recognizer's) has no rating: `rate` returns None and callers count it apart.

pii-codex is imported inside the functions: importing this module (the policy schema reads the
level names) costs nothing.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import NamedTuple

LIBRARY = "pii-codex"

# pii-codex's RiskLevel values and RiskLevelDefinition names, lower-cased (tests compare them
# with the library's enums).
LEVELS: dict[int, str] = {1: "non-identifiable", 2: "semi-identifiable", 3: "identifiable"}
LEVEL_NUMBERS: dict[str, int] = {name: n for n, name in LEVELS.items()}
NO_FINDINGS_SCORE = 1.0  # pii-codex's score for a document without detections (RiskLevel.LEVEL_ONE)

# custody entity type -> pii-codex PIIType name.
CODEX_TYPES: dict[str, str] = {
    # NER (presidio's SpacyRecognizer)
    "PERSON": "PERSON",
    "LOCATION": "ADDRESS",  # pii-codex's presidio adapter: LOCATION -> ADDRESS
    "PERSON_NAME": "PERSON",  # custody's opt-in name recognizer (pii/names.py): a person's name
    "STREET_ADDRESS": "ADDRESS",  # custody's opt-in address recognizer (pii/recall.py): a postal address
    "NRP": "NRP",
    "DATE_TIME": "DATE",  # pii-codex's presidio adapter: DATE_TIME -> DATE
    "AGE": "AGE",
    # presidio's pattern recognizers (custody's default set first)
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "CREDIT_CARD": "CREDIT_CARD_NUMBER",
    "US_SSN": "US_SOCIAL_SECURITY_NUMBER",
    "IBAN_CODE": "INTERNATIONAL_BANKING_ACCOUNT_NUMBER",
    "IP_ADDRESS": "IP_ADDRESS",
    "URL": "URL",
    "CRYPTO": "CRYPTO",
    "MEDICAL_LICENSE": "MEDICAL_LICENSE",
    "MAC_ADDRESS": "MAC_ADDRESS",
    "US_BANK_NUMBER": "US_BANK_ACCOUNT_NUMBER",
    "US_DRIVER_LICENSE": "US_DRIVERS_LICENSE_NUMBER",
    "US_PASSPORT": "US_PASSPORT_NUMBER",
    "US_ITIN": "US_INDIVIDUAL_TAXPAYER_IDENTIFICATION",
    "US_MBI": "US_MBI",
    "UK_NHS": "UK_NHS",
    "UK_NINO": "UK_NINO",
    "AU_ABN": "AU_BUSINESS_NUMBER",
    "AU_ACN": "AU_COMPANY_NUMBER",
    "AU_MEDICARE": "AU_MEDICAL_ACCOUNT_NUMBER",
    "AU_TFN": "AU_TAX_FILE_NUMBER",
    "ES_NIF": "ES_NIF",
    "ES_NIE": "ES_NIE",
    "IT_FISCAL_CODE": "IT_FISCAL_CODE",
    "IT_DRIVER_LICENSE": "IT_DRIVER_LICENSE",
    "IT_VAT_CODE": "IT_VAT_CODE",
    "IT_PASSPORT": "IT_PASSPORT",
    "IT_IDENTITY_CARD": "IT_IDENTITY_CARD",
    "PL_PESEL": "PL_PESEL",
    "SG_NRIC_FIN": "SG_NRIC_FIN",
    "SG_UEN": "SG_UEN",
    "IN_PAN": "IN_PAN",
    "IN_AADHAAR": "IN_AADHAAR",
    "IN_VEHICLE_REGISTRATION": "IN_VEHICLE_REGISTRATION",
    "IN_VOTER": "IN_VOTER",
    "IN_PASSPORT": "IN_PASSPORT",
    "IN_GSTIN": "IN_GSTIN",
    "FI_PERSONAL_IDENTITY_CODE": "FI_PERSONAL_IDENTITY_CODE",
    "KR_DRIVER_LICENSE": "KR_DRIVER_LICENSE",
    "KR_FRN": "KR_FRN",
    "KR_PASSPORT": "KR_PASSPORT",
    "KR_BRN": "KR_BRN",
    "KR_RRN": "KR_RRN",
    "TH_TNIN": "TH_TNIN",
    # custody's secrets recognizers (pii-codex has no presidio type for them)
    "API_KEY": "SECURITY_ACCESS_CODES",
    "PRIVATE_KEY": "SECURITY_ACCESS_CODES",
    "URL_CREDENTIALS": "PASSWORD",
}


class Rating(NamedTuple):
    """pii-codex's assessment of one custody entity type."""

    entity: str  # custody's entity type
    codex_type: str  # pii-codex's PIIType name
    level: int  # 1, 2 or 3
    level_name: str  # non-identifiable | semi-identifiable | identifiable
    category: str  # Milne et al.'s information cluster (pii-codex's cluster_membership_type)
    nist: str
    dhs: str
    hipaa: str

    def as_json(self) -> dict[str, object]:
        return {
            "codex_type": self.codex_type,
            "level": self.level,
            "level_name": self.level_name,
            "category": self.category,
            "nist": self.nist,
            "dhs": self.dhs,
            "hipaa": self.hipaa,
        }


@lru_cache(maxsize=1)
def source() -> str:
    """`pii-codex/VERSION`: part of the pii check's configuration (ratings change with it)."""
    from importlib.metadata import version

    return f"{LIBRARY}/{version(LIBRARY)}"


@cache
def _assessment(codex_type: str):
    from pii_codex.services.assessment_service import PIIAssessmentService

    return PIIAssessmentService().assess_pii_type(codex_type)


@cache
def rate(entity: str) -> Rating | None:
    """pii-codex's rating of a custody entity type; None when the type has no pii-codex mapping."""
    codex_type = CODEX_TYPES.get(entity)
    if codex_type is None:
        return None
    assessment = _assessment(codex_type)
    return Rating(
        entity,
        codex_type,
        assessment.risk_level,
        LEVELS[assessment.risk_level],
        assessment.cluster_membership_type,
        assessment.nist_category,
        assessment.dhs_category,
        assessment.hipaa_category,
    )


def record_score(entities: list[str]) -> float:
    """One document's risk score as pii-codex computes it: the mean level of its detections (one
    entry per detection, repeats counted), 1.0 when it has none. Unrated types are left out."""
    from pii_codex.services.assessment_service import PIIAssessmentService

    assessments = [_assessment(CODEX_TYPES[e]) for e in entities if e in CODEX_TYPES]
    if not assessments:
        return NO_FINDINGS_SCORE
    return float(PIIAssessmentService.calculate_risk_assessment_score_average(assessments))
