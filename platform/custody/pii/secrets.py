"""Recognizers for secrets that leak into web and code data.

Each is a presidio PatternRecognizer with case-sensitive patterns (presidio's default flags
ignore case, which would let `akia...` or `GHP_...` through). Entity types:

- API_KEY: AWS access key ids (AKIA/ASIA/...), GitHub tokens (ghp_/gho_/ghu_/ghs_/ghr_,
  github_pat_), Slack tokens (xoxb-/xoxp-/...) and webhook URLs, Google API keys (AIza...),
  OpenAI-style `sk-...` keys, Stripe secret and restricted keys (sk_live_/rk_test_/...).
- PRIVATE_KEY: a PEM/OpenSSH/PGP private key block, `-----BEGIN ... PRIVATE KEY-----` through its
  END line (a BEGIN line without an END line is still reported, with a lower score).
- URL_CREDENTIALS: the `user:password` part of `scheme://user:password@host`; obvious
  placeholders (`user:password`, `<pass>`, `${PASSWORD}`, `****`) are not reported.

`PREFILTER` holds, per entity, a cheap regex that must match for the recognizer to be worth
running on a text at all (a literal prefix each pattern needs).
"""

from __future__ import annotations

import re as stdre

import regex as re
from presidio_analyzer import Pattern, PatternRecognizer

FLAGS = re.DOTALL | re.MULTILINE  # case-sensitive on purpose

_B = r"(?<![A-Za-z0-9_\-])"  # start boundary for tokens that may contain - or _
_E = r"(?![A-Za-z0-9_\-])"

API_KEY_PATTERNS = [
    Pattern(
        "aws_access_key_id",
        _B + r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)" + r"[A-Z0-9]{16}" + _E,
        0.9,
    ),
    Pattern("github_token", _B + r"gh[pousr]_[A-Za-z0-9]{36,255}" + _E, 0.95),
    Pattern("github_fine_grained_pat", _B + r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}" + _E, 0.95),
    Pattern("slack_token", _B + r"xox[abposr]-(?:[0-9]+-)+[A-Za-z0-9]{8,}" + _E, 0.9),
    Pattern(
        "slack_webhook",
        r"https://hooks\.slack\.com/(?:services|workflows)/T[A-Z0-9]{6,}/[A-Z0-9]{6,}/[A-Za-z0-9]{16,}",
        0.9,
    ),
    Pattern("google_api_key", _B + r"AIza[0-9A-Za-z_\-]{35}" + _E, 0.9),
    Pattern("openai_style_key", _B + r"sk-(?:(?:proj|svcacct|admin|ant-api\d\d)-)?[A-Za-z0-9_\-]{32,}" + _E, 0.8),
    Pattern("stripe_secret_key", _B + r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{20,}" + _E, 0.9),
]

_PK_LABEL = r"(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?"
PRIVATE_KEY_PATTERNS = [
    Pattern("private_key_block", rf"-----BEGIN {_PK_LABEL}-----.*?-----END {_PK_LABEL}-----", 1.0),
    Pattern("private_key_header", rf"-----BEGIN {_PK_LABEL}-----(?!.*?-----END {_PK_LABEL}-----)", 0.6),
]

URL_CREDENTIALS_PATTERNS = [
    # scheme://user:password@host -- the span is `user:password`
    Pattern(
        "url_userinfo_password",
        r"(?<=\b[A-Za-z][A-Za-z0-9+.\-]{1,20}://)[^\s:/?#@\[\]\"'<>]{1,128}:[^\s/?#@\"'<>]{1,256}(?=@[A-Za-z0-9\[])",
        0.8,
    ),
]

_PLACEHOLDER = stdre.compile(
    r"""^(?:
        (?:pass(?:word|wd)?|pwd|secret|changeme|xxx+|\*+|\.+|-+|_+)   # words and fillers
      | <[^>]*> | \$\{[^}]*\} | \$\([^)]*\) | \{\{[^}]*\}\} | \{[^}]*\} | %[^%]*% | \$[A-Za-z_][A-Za-z0-9_]*
    )$""",
    stdre.IGNORECASE | stdre.VERBOSE,
)


class UrlCredentialsRecognizer(PatternRecognizer):
    """`user:password@` in URLs; placeholder passwords are not credentials."""

    def invalidate_result(self, pattern_text: str) -> bool | None:
        _, _, password = pattern_text.partition(":")
        return bool(_PLACEHOLDER.match(password))


def secret_recognizers() -> list[PatternRecognizer]:
    return [
        PatternRecognizer(
            "API_KEY",
            name="CustodyApiKeyRecognizer",
            patterns=list(API_KEY_PATTERNS),
            global_regex_flags=FLAGS,
            context=["key", "token", "api", "secret", "apikey", "access"],
        ),
        PatternRecognizer(
            "PRIVATE_KEY",
            name="CustodyPrivateKeyRecognizer",
            patterns=list(PRIVATE_KEY_PATTERNS),
            global_regex_flags=FLAGS,
        ),
        UrlCredentialsRecognizer(
            "URL_CREDENTIALS",
            name="CustodyUrlCredentialsRecognizer",
            patterns=list(URL_CREDENTIALS_PATTERNS),
            global_regex_flags=FLAGS,
        ),
    ]


PREFILTER = {
    "API_KEY": stdre.compile(
        r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|ROA|PKA|SCA)[A-Z0-9]|gh[pousr]_|github_pat_|xox[abposr]-"
        r"|hooks\.slack\.com|AIza|sk-|[sr]k_(?:live|test)_"
    ),
    "PRIVATE_KEY": stdre.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY"),
    "URL_CREDENTIALS": stdre.compile(r"://[^\s/@]{0,400}@"),
}
