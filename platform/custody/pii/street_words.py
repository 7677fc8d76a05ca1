"""Street words, as regex alternations: what the address recognizer (custody.pii.recall) matches
and what tells the name recognizer (custody.pii.names) that a name is part of a street's."""

# USPS street suffixes and the ones faker's street names use (Crossing, Pass, Union, ...).
STREET_SUFFIXES = (
    "Alley|Allee|Ave|Avenue|Bend|Blvd|Boulevard|Bypass|Causeway|Cir|Circle|Close|Common|Corner|"
    "Court|Courts|Cove|Cres|Crescent|Crossing|Ct|Dale|Dr|Drive|Estates|Expressway|Extension|Fort|"
    "Freeway|Gardens|Gate|Glen|Green|Grove|Harbor|Heights|Highway|Hill|Hills|Hwy|Junction|Lane|"
    "Ln|Loop|Mall|Manor|Meadow|Meadows|Mews|Mission|Motorway|Parade|Park|Parkway|Pass|Path|Pike|"
    "Pkwy|Pl|Place|Plaza|Point|Port|Rd|Ridge|Road|Route|Row|Sq|Square|St|Str|Street|Stravenue|"
    "Summit|Ter|Terrace|Trace|Trafficway|Trail|Trl|Tunnel|Turnpike|Union|Valley|View|Villages?|"
    "Ville|Vista|Walk|Way|Wharf"
)
# Suffix words that come before the house number in German and Dutch ("Augsburger Strasse 36").
SUFFIX_NUMBER_WORDS = "Strasse|Straße|Gasse|Weg|Allee|Platz|Straat|Laan"
# Words that open a street name in Romance and Slavic languages (Rue de ..., Calle ..., ul. ...).
STREET_PREFIXES = (
    r"Rue|Rua|Rúa|Calle|C/|Carrer|Avenida|Avda\.?|Av\.|Avenue|Via|Viale|Vicolo|Piazza|Piazzale|"
    r"Largo|Corso|Strada|Travessa|Praça|Place|Boulevard|Chemin|Allée|Impasse|Quai|Ulica|ul\.|"
    r"Odos|Rruga|Straße|Strasse|Calea|Str\.|Sokak|Cadde"
)
# Suffixes of one-word street names (Hammarvägen, Præstevænget, Augsburger Strasse, Harjukuja).
JOINED_SUFFIXES = (
    r"vej|vænget|gade|stræde|gatan|gata|vägen|väg|veien|vegen|gaten|straße|strasse|str\.|weg|"
    r"laan|straat|dreef|plein|gracht|kade|steeg|katu|kuja|tie|polku|utca|út|ulica|aleja|ring|"
    r"gasse|platz|allee|damm|pfad|ufer|berg|graben|park|markt|hof|tee|puiestee|iela|gatve|"
    r"caddesi|sokak|sokağı"
)
