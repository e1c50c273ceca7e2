"""Deterministic Zoho CRM data: field metadata per module and record values.

Everything here is a pure function of (seed, module, index) plus the clock
anchor, so two simulators started with the same seed and anchor hold the same
data.  Values are deliberately nasty: commas, double quotes, embedded LF and
CRLF, accents, CJK, emoji, leading zeros in text, ids above 2**53.

Internal value representation (what store.py keeps per record):

    text-like, picklist, email, phone, website, textarea -> str or None
    multiselectpicklist                                   -> tuple of str (empty tuple = none)
    integer                                               -> int or None
    bigint (non-id)                                       -> int or None (rendered as JSON string)
    double, currency, percent                             -> float (2 decimals) or None
    boolean                                               -> bool
    date                                                  -> "YYYY-MM-DD" or None
    datetime                                              -> int epoch seconds (UTC) or None
    ownerlookup                                           -> user id str (always set)
    lookup                                                -> (id str, name str) tuple or None
    id                                                    -> str
Records are treated as immutable once stored: an update builds a new dict.
"""

import functools
import random
import zlib
from datetime import date, datetime, timedelta, timezone

import inventory

BASE_ID = 5725767000000000000          # > 2**53, < 2**63
ID_STRIDE = 7919                       # record ids: BASE + module*1e11 + (index+1)*stride
MODULE_SPAN = 100_000_000_000
PRE_DELETED_OFFSET = 50_000_000_000    # id region for records deleted before start

KNOWN_MODULE_NUMS = {
    "Leads": 1, "Contacts": 2, "Accounts": 3, "Deals": 4, "Campaigns": 5,
    "Tasks": 6, "Cases": 7, "Products": 8, "Vendors": 9, "Quotes": 10,
}

# ---------------------------------------------------------------- users ----
USERS = [
    ("5725767000000411001", "Patricia Boyle", "p.boyle@zylker.com"),
    ("5725767000000411019", "José Álvarez", "jose.alvarez@zylker.com"),
    ("5725767000000411037", "山田 太郎", "t.yamada@zylker.jp"),
    ("5725767000000411055", "Zoë O'Brien", "zoe.obrien@zylker.com"),
    ("5725767000000411073", 'Ørjan "OJ" Nilsen', "oj.nilsen@zylker.no"),
    ("5725767000000411091", "Admin, Sync", "sync.admin@zylker.com"),
]
USER_BY_ID = {u[0]: {"name": u[1], "id": u[0], "email": u[2]} for u in USERS}
USER_IDS = [u[0] for u in USERS]

# Accounts referenced by lookups (Converted_Account, Account_Name)
ACCOUNT_NAMES = [
    "Acme, Inc.", 'Globex "International"', "Initech", "Café Müller GmbH",
    "株式会社サンプル", "Wayne Enterprises", "Soylent, \"Green\" & Co.",
    "🚀 Rocket Labs", "Vandelay Industries", "Société Générale de Test",
    "Hooli", "Pied Piper\nHoldings", "Umbrella Corp.", "Øresund Shipping A/S",
]


def account_lookup(k):
    k = k % len(ACCOUNT_NAMES)
    aid = str(BASE_ID + KNOWN_MODULE_NUMS["Accounts"] * MODULE_SPAN + 900_000_000 + (k + 1) * ID_STRIDE)
    return (aid, ACCOUNT_NAMES[k])


# ---------------------------------------------------------- word lists -----
FIRST_NAMES = [
    "James", "Mary", "José", "Zoë", "François", "Łukasz", "Søren", "Ana María",
    "李", "Ольга", "Nguyễn Văn", "Jean-Luc", "Åsa", "Priya", "Chloé", "Björn",
    "Mohammed", "Yuki", "Siobhán", "Dvořák", "Renée", "Ngozi", "Kwame", "Eleni",
]
LAST_NAMES = [
    "Smith", "García", "Müller", "O'Connor", "Nakamura", "王", "Ivanović",
    "D'Angelo", "van der Berg", "Smith, Jr.", '"Bud" Wilson', "Kowalski",
    "Øvergård", "Ng", "Schäfer", "Fernández-López", "Ølstad", "佐藤", "Papadopoulos",
    "Okafor", "Brontë", "Lefèvre", "Ó Briain", "Johnson",
]
COMPANIES = ACCOUNT_NAMES + [
    "Zylker Corp", "Stark Industries", "Tyrell \"Replicant\" Corp", "Cyberdyne Systems",
    "Oscorp, LLC", "Wonka Industries\r\nConfectionery Division", "Bluth Company",
    "Massive Dynamic", "Nakatomi Trading", "北京示例科技有限公司", "Ümit Yazılım A.Ş.",
]
DESIGNATIONS = [
    "CEO", "CTO", "Head of Sales", "VP, Marketing", "Purchasing \"Lead\"", "Engineer",
    "Directeur général", "部長", "Office Manager", "Consultant", "Analyst",
]
CITIES = [
    ("San Francisco", "CA", "94105", "United States"),
    ("New York", "NY", "10001", "United States"),
    ("Boston", "MA", "02108", "United States"),
    ("London", "England", "SW1A 1AA", "United Kingdom"),
    ("München", "Bayern", "80331", "Germany"),
    ("Zürich", "ZH", "8001", "Switzerland"),
    ("São Paulo", "SP", "01310-100", "Brazil"),
    ("東京", "東京都", "100-0001", "日本"),
    ("Chennai", "Tamil Nadu", "600001", "India"),
    ("Kraków", "Małopolskie", "30-001", "Poland"),
    ("Montréal", "QC", "H2X 1Y4", "Canada"),
    ("Reykjavík", "", "101", "Iceland"),
    ("Cork", "Co. Cork", "T12 XY34", "Ireland"),
]
STREETS = [
    "1 Infinite Loop", "221B Baker Street", "12 Rue de l'Église", "Hauptstraße 5",
    "742 Evergreen Terrace, Apt. 3", "Unit 4\nBuilding \"C\"", "1600 Amphitheatre Pkwy",
    "千代田1-1", "Av. Paulista, 1578", "PO Box 123\r\nDock 7", "ul. Floriańska 15",
]
SENTENCES = [
    "Met at the trade show, follow up next week.",
    "Asked for a quote: 250 seats, annual billing.",
    'Said "call me after lunch".',
    "Interested in the Enterprise plan, but budget is tight, maybe Q3.",
    "Prefers email; do not call before 10:00.",
    "Très intéressé par l'intégration.",
    "需要中文支持。",
    "Great call 🎉 — sent the deck 📎.",
    "Referred by Zoë O'Brien.",
    "Line with trailing spaces   ",
    "Tab\tseparated\tnotes",
    "Price quoted: $1,299.00 per year",
    "50% discount requested, ask manager",
    "<b>HTML-ish</b> & ampersands",
    "Backslash \\ path C:\\temp\\x",
]
DOMAINS = ["example.com", "zylker.com", "acme.test", "müller-example.de", "example.co.jp", "mail.example.org"]
INDUSTRIES = ["ASP (Application Service Provider)", "Data/Telecom OEM", "ERP (Enterprise Resource Planning)",
              "Government/Military", "Large Enterprise", "Management ISV", "MSP (Management Service Provider)",
              "Network Equipment Enterprise", "Non-management ISV", "Optical Networking", "Service Provider",
              "Small/Medium Enterprise", "Storage Equipment", "Storage Service Provider", "Systems Integrator",
              "Wireless Industry"]
LEAD_SOURCES = ["Advertisement", "Cold Call", "Employee Referral", "External Referral", "Online Store",
                "Partner", "Public Relations", "Sales Email Alias", "Seminar Partner", "Internal Seminar",
                "Trade Show", "Web Download", "Web Research", "Chat", "X (Twitter)", "Facebook"]
LEAD_STATUSES = ["Attempted to Contact", "Contact in Future", "Contacted", "Junk Lead", "Lost Lead",
                 "Not Contacted", "Pre-Qualified", "Not Qualified"]
RATINGS = ["Acquired", "Active", "Market Failed", "Project Cancelled", "Shut Down"]
SALUTATIONS = ["Mr.", "Mrs.", "Ms.", "Dr.", "Prof."]
PRODUCT_INTEREST = ["CRM Plus", "Analytics Suite", "Mobile App", "Cloud Storage", "24/7 Support",
                    "Café Bundle", "Consulting, Training", "Données & Rapports", "API \"Pro\" Tier"]
STATUSES = ["Open", "In Progress", "On Hold", "Closed Won", "Closed Lost"]
CATEGORIES = ["Hardware", "Software", "Services", "Gold Partner", "Région Nord", "Key Account"]
DEPARTMENTS = ["Sales", "Marketing", "R&D", "Finance, Legal", "Ops", "Support"]


# --------------------------------------------------------- field tables ----
# (api_name, label, data_type, length, flags, gen, extra)
# flags: r = read_only, c = custom, m = system_mandatory, o = optional (may be null)
def _leads_table():
    return [
        ("id", "Record Id", "bigint", 19, "r", "id", None),
        ("Owner", "Lead Owner", "ownerlookup", 120, "", "owner", None),
        ("Salutation", "Salutation", "picklist", 120, "o", "picklist", SALUTATIONS),
        ("First_Name", "First Name", "text", 40, "o", "first_name", None),
        ("Last_Name", "Last Name", "text", 80, "m", "last_name", None),
        ("Full_Name", "Full Name", "text", 120, "r", "full_name", None),
        ("Company", "Company", "text", 200, "o", "company", None),
        ("Designation", "Title", "text", 100, "o", "designation", None),
        ("Email", "Email", "email", 100, "o", "email", None),
        ("Secondary_Email", "Secondary Email", "email", 100, "o", "email", None),
        ("Phone", "Phone", "phone", 30, "o", "phone", None),
        ("Mobile", "Mobile", "phone", 30, "o", "phone", None),
        ("Fax", "Fax", "text", 30, "o", "phone", None),
        ("Skype_ID", "Skype ID", "text", 50, "o", "handle", None),
        ("Twitter", "X", "text", 50, "o", "handle", None),
        ("Website", "Website", "website", 255, "o", "website", None),
        ("Lead_Source", "Lead Source", "picklist", 120, "o", "picklist", LEAD_SOURCES),
        ("Lead_Status", "Lead Status", "picklist", 120, "o", "picklist", LEAD_STATUSES),
        ("Industry", "Industry", "picklist", 120, "o", "picklist", INDUSTRIES),
        ("Rating", "Rating", "picklist", 120, "o", "picklist", RATINGS),
        ("No_of_Employees", "No. of Employees", "integer", 9, "o", "employees", None),
        ("Annual_Revenue", "Annual Revenue", "currency", 16, "o", "money", None),
        ("Email_Opt_Out", "Email Opt Out", "boolean", 5, "", "bool", None),
        ("Street", "Street", "text", 250, "o", "street", None),
        ("City", "City", "text", 100, "o", "city", None),
        ("State", "State", "text", 100, "o", "state", None),
        ("Zip_Code", "Zip Code", "text", 30, "o", "zip", None),
        ("Country", "Country", "text", 100, "o", "country", None),
        ("Description", "Description", "textarea", 32000, "o", "description", None),
        ("Created_By", "Created By", "ownerlookup", 120, "r", "creator", None),
        ("Modified_By", "Modified By", "ownerlookup", 120, "r", "modifier", None),
        ("Created_Time", "Created Time", "datetime", 120, "r", "created_time", None),
        ("Modified_Time", "Modified Time", "datetime", 120, "r", "modified_time", None),
        ("Last_Activity_Time", "Last Activity Time", "datetime", 120, "ro", "activity_time", None),
        ("Converted__s", "Is Converted", "boolean", 5, "r", "converted", None),
        ("Converted_Date_Time", "Converted Date Time", "datetime", 120, "ro", "converted_time", None),
        ("Converted_Account", "Converted Account", "lookup", 120, "ro", "converted_account", "Accounts"),
        ("Lead_Conversion_Time", "Lead Conversion Time", "integer", 9, "ro", "conversion_days", None),
        # custom fields exercising more types
        ("Product_Interest", "Product Interest", "multiselectpicklist", 2000, "co", "multi", PRODUCT_INTEREST),
        ("Expected_Close", "Expected Close", "date", 20, "co", "future_date", None),
        ("Probability", "Probability (%)", "percent", 5, "co", "percent", None),
        ("Budget", "Budget", "double", 16, "co", "money", None),
        ("External_Ref", "External Ref", "bigint", 19, "co", "bigint", None),
    ]


def _contacts_table():
    return [
        ("id", "Record Id", "bigint", 19, "r", "id", None),
        ("Owner", "Contact Owner", "ownerlookup", 120, "", "owner", None),
        ("First_Name", "First Name", "text", 40, "o", "first_name", None),
        ("Last_Name", "Last Name", "text", 80, "m", "last_name", None),
        ("Full_Name", "Full Name", "text", 120, "r", "full_name", None),
        ("Email", "Email", "email", 100, "o", "email", None),
        ("Phone", "Phone", "phone", 30, "o", "phone", None),
        ("Mobile", "Mobile", "phone", 30, "o", "phone", None),
        ("Account_Name", "Account Name", "lookup", 120, "o", "account", "Accounts"),
        ("Title", "Title", "text", 100, "o", "designation", None),
        ("Department", "Department", "text", 100, "o", "department", None),
        ("Date_of_Birth", "Date of Birth", "date", 20, "o", "birth_date", None),
        ("Mailing_City", "Mailing City", "text", 100, "o", "city", None),
        ("Mailing_Country", "Mailing Country", "text", 100, "o", "country", None),
        ("Description", "Description", "textarea", 32000, "o", "description", None),
        ("Email_Opt_Out", "Email Opt Out", "boolean", 5, "", "bool", None),
        ("Created_By", "Created By", "ownerlookup", 120, "r", "creator", None),
        ("Modified_By", "Modified By", "ownerlookup", 120, "r", "modifier", None),
        ("Created_Time", "Created Time", "datetime", 120, "r", "created_time", None),
        ("Modified_Time", "Modified Time", "datetime", 120, "r", "modified_time", None),
    ]


def _generic_table(module):
    return [
        ("id", "Record Id", "bigint", 19, "r", "id", None),
        ("Owner", "Owner", "ownerlookup", 120, "", "owner", None),
        ("Name", "%s Name" % module, "text", 120, "m", "company", None),
        ("Email", "Email", "email", 100, "o", "email", None),
        ("Status", "Status", "picklist", 120, "o", "picklist", STATUSES),
        ("Amount", "Amount", "currency", 16, "o", "money", None),
        ("Quantity", "Quantity", "integer", 9, "o", "employees", None),
        ("Active", "Active", "boolean", 5, "", "bool", None),
        ("Due_Date", "Due Date", "date", 20, "o", "future_date", None),
        ("Categories", "Categories", "multiselectpicklist", 2000, "co", "multi", CATEGORIES),
        ("Description", "Description", "textarea", 32000, "o", "description", None),
        ("Created_By", "Created By", "ownerlookup", 120, "r", "creator", None),
        ("Modified_By", "Modified By", "ownerlookup", 120, "r", "modifier", None),
        ("Created_Time", "Created Time", "datetime", 120, "r", "created_time", None),
        ("Modified_Time", "Modified Time", "datetime", 120, "r", "modified_time", None),
    ]


JSON_TYPES = {
    "text": "string", "email": "string", "phone": "string", "website": "string",
    "picklist": "string", "textarea": "string", "date": "string", "datetime": "string",
    "multiselectpicklist": "jsonarray", "integer": "integer", "bigint": "string",
    "double": "double", "currency": "double", "percent": "double", "boolean": "boolean",
    "ownerlookup": "jsonobject", "lookup": "jsonobject",
}

# Formula and rollup fields added by --formulas:
# (api_name, label, data_type, length, return_type, expression). Their values
# are formula_values() of the record and the formula clock, never generated
# or edited; Zoho recomputes them without moving Modified_Time.
FORMULA_FIELDS = [
    ("Age_Days", "Age (days)", "formula", 16, "double",
     "Datecomp(Now(),${Created Time})/1440"),
    ("Age_Label", "Age label", "formula", 255, "text",
     "Concat(${Owner},', day ',Tostring(Datecomp(Now(),${Created Time})/1440))"),
    ("Rollup_Total", "Rollup total", "rollup_summary", 16, "currency", None),
]
RETURN_JSON_TYPES = {"double": "double", "currency": "double", "text": "string",
                     "boolean": "boolean", "date": "string", "datetime": "string"}

# Types whose value may be a user-editable field (update generator picks from these)
SYSTEM_GENS = {"id", "full_name", "creator", "modifier", "created_time", "modified_time",
               "converted", "converted_time", "converted_account", "conversion_days",
               "activity_time", "formula"} | inventory.DERIVED_GENS


def value_type(fd):
    """The data type a value is rendered by: a formula's return type."""
    if fd.gen == "formula":
        return fd.choices[0]
    return fd.data_type


def formula_values(rec, fdefs, anchor, clock):
    """The formula fields' values of a record at formula clock `clock` (a
    count of recomputes: the formulas' "now" is anchor + clock days), a
    pure function of the record's other values and the clock, so a change
    of clock changes every formula value without touching Modified_Time."""
    out = {}
    created = rec.get("Created_Time")
    age = None if created is None else (anchor + clock * 86400 - created) / 86400.0
    for fd in fdefs:
        if fd.gen != "formula":
            continue
        ret = fd.choices[0]
        if fd.data_type == "rollup_summary":
            out[fd.api_name] = round((int(rec["id"]) % 100_000) / 100.0 + clock, 2)
        elif ret == "double":
            out[fd.api_name] = None if age is None else round(age, 2)
        else:
            owner = USER_BY_ID.get(rec.get("Owner"), {"name": "nobody"})["name"]
            out[fd.api_name] = "%s, day %d" % (owner, clock)
    return out


def module_num(module):
    n = KNOWN_MODULE_NUMS.get(module) or inventory.MODULE_NUMS.get(module)
    if n is None:
        n = 100 + zlib.crc32(module.encode("utf-8")) % 800
    return n


def module_id(module):
    return str(BASE_ID + 2175 + module_num(module) * 1000)


class FieldDef:
    __slots__ = ("api_name", "data_type", "gen", "optional", "read_only", "choices", "meta", "length")

    def __init__(self, api_name, data_type, gen, optional, read_only, choices, meta, length):
        self.api_name = api_name
        self.data_type = data_type
        self.gen = gen
        self.optional = optional
        self.read_only = read_only
        self.choices = choices
        self.meta = meta
        self.length = length


def build_fields(module, width=None, formulas=False):
    """Return (metadata list, FieldDef list) for a module. width: pad the
    module's own fields with custom text fields (Custom_Text_1, …) up to
    that many fields in all (a wide module: Get Records then needs several
    calls of at most 50 fields). formulas: add FORMULA_FIELDS (after the
    padding, so width counts the module's own fields only)."""
    if module == "Leads":
        table = _leads_table()
    elif module == "Contacts":
        table = _contacts_table()
    else:
        table = inventory.table_for(module) or _generic_table(module)
    if width and width > len(table):
        table = table + [("Custom_Text_%d" % k, "Custom Text %d" % k, "text", 255, "co",
                          "company", None) for k in range(1, width - len(table) + 1)]
    if formulas:
        table = table + [(api, label, dtype, length, "cr", "formula", (ret, expr))
                         for api, label, dtype, length, ret, expr in FORMULA_FIELDS]
    mnum = module_num(module)
    metas, defs = [], []
    for i, (api, label, dtype, length, flags, gen, extra) in enumerate(table):
        fid = str(BASE_ID + 2000 + mnum * 1_000_000 + i * 7 + 1)
        meta = {
            "api_name": api,
            "id": fid,
            "field_label": label,
            "display_label": label,
            "data_type": dtype,
            "json_type": JSON_TYPES.get(dtype) or inventory.EXTRA_JSON_TYPES.get(dtype),
            "length": length,
            "decimal_place": 2 if dtype in ("currency", "double", "percent") else None,
            "read_only": "r" in flags,
            "field_read_only": "r" in flags,
            "custom_field": "c" in flags,
            "system_mandatory": "m" in flags,
            "visible": True,
            "sortable": dtype not in ("textarea", "multiselectpicklist"),
            "searchable": dtype not in ("textarea",),
            "pick_list_values": [],
            "lookup": {},
        }
        choices = None
        if dtype in ("picklist", "multiselectpicklist"):
            choices = list(extra)
            plv = []
            if dtype == "picklist":
                plv.append({"display_value": "-None-", "actual_value": "-None-",
                            "reference_value": "-None-", "id": str(BASE_ID + 10 ** 10 + mnum * 10 ** 6 + i * 1000),
                            "sequence_number": 0, "type": "used"})
            for k, v in enumerate(choices):
                plv.append({"display_value": v, "actual_value": v, "reference_value": v,
                            "id": str(BASE_ID + 10 ** 10 + mnum * 10 ** 6 + i * 1000 + k + 1),
                            "sequence_number": k + 1, "type": "used"})
            meta["pick_list_values"] = plv
        if dtype == "lookup" and extra:
            meta["lookup"] = {"display_label": extra, "api_name": extra,
                              "module": {"api_name": extra, "id": module_id(extra)}, "id": fid}
        if dtype == "textarea":
            meta["textarea"] = {"type": "large"}
        if dtype == "currency":
            meta["currency"] = {"rounding_option": "normal", "precision": 2}
        meta["multiselectlookup"] = {}
        meta["formula"] = {}
        if gen == "formula":
            # Zoho: the result's type is in formula.return_type (rollups:
            # rollup_summary.return_type); json_type follows it.
            ret, expr = extra
            choices = extra
            meta["json_type"] = RETURN_JSON_TYPES[ret]
            meta["decimal_place"] = 2 if ret in ("double", "currency") else None
            meta["sortable"] = False
            if dtype == "formula":
                meta["formula"] = {"return_type": ret, "expression": expr}
            else:
                meta["rollup_summary"] = {"return_type": ret, "expression": {
                    "function": "SUM", "function_parameters": [{"api_name": "Amount"}]},
                    "based_on_module": {"api_name": "Deals"}}
            extra = None
        inventory.extend_meta(meta, dtype, gen, extra, fid, module_id)
        if gen == "ref_name":
            choices = inventory.NAMES_BY_MODULE.get(extra)
        metas.append(meta)
        defs.append(FieldDef(api, dtype, gen, "o" in flags, "r" in flags, choices, meta, length))
    return metas, defs


# ------------------------------------------------------------ generator ----
def record_id(module, index):
    return str(BASE_ID + module_num(module) * MODULE_SPAN + (index + 1) * ID_STRIDE)


def pre_deleted_id(module, index):
    return str(BASE_ID + module_num(module) * MODULE_SPAN + PRE_DELETED_OFFSET + (index + 1) * ID_STRIDE)


def rng_for(seed, module, index, salt=""):
    # str seeds are hashed with SHA-512: stable across runs and PYTHONHASHSEED
    return random.Random("%s|%s|%s|%s" % (seed, module, index, salt))


def _ascii_token(s):
    out = []
    for ch in s.lower():
        if "a" <= ch <= "z" or "0" <= ch <= "9":
            out.append(ch)
    return "".join(out) or "user"


def _clip(s, length):
    if s is not None and length and len(s) > length:
        s = s[:length]
    return s


def gen_value(fd, rng, ctx):
    """Generate a value for one field.  ctx carries anchor, cross-field info."""
    g = fd.gen
    if fd.optional and g not in ("multi",) and rng.random() < 0.30:
        return None
    if g == "owner":
        return rng.choice(USER_IDS)
    if g == "picklist":
        return rng.choice(fd.choices)
    if g == "multi":
        if rng.random() < 0.30:
            return ()
        k = rng.randint(1, min(4, len(fd.choices)))
        picked = rng.sample(fd.choices, k)
        return tuple(sorted(picked, key=fd.choices.index))
    if g == "first_name":
        return rng.choice(FIRST_NAMES)
    if g == "last_name":
        v = rng.choice(LAST_NAMES)
        if rng.random() < 0.1:
            v += " " + rng.choice(LAST_NAMES)
        return _clip(v, fd.length)
    if g == "company":
        v = rng.choice(COMPANIES)
        if rng.random() < 0.2:
            v = "%s #%d" % (v, rng.randint(1, 999))
        return _clip(v, fd.length)
    if g == "designation":
        return rng.choice(DESIGNATIONS)
    if g == "department":
        return rng.choice(DEPARTMENTS)
    if g == "email":
        name = _ascii_token(rng.choice(FIRST_NAMES)) + "." + _ascii_token(rng.choice(LAST_NAMES))
        return "%s%d@%s" % (name, rng.randint(1, 9999), rng.choice(DOMAINS))
    if g == "phone":
        return rng.choice([
            "+1 (555) %03d-%04d" % (rng.randint(0, 999), rng.randint(0, 9999)),
            "+44 20 %04d %04d" % (rng.randint(0, 9999), rng.randint(0, 9999)),
            "+81-3-%04d-%04d" % (rng.randint(0, 9999), rng.randint(0, 9999)),
            "0%d %d" % (rng.randint(100, 999), rng.randint(100000, 999999)),
        ])
    if g == "handle":
        return "%s_%d" % (_ascii_token(rng.choice(FIRST_NAMES)), rng.randint(1, 99999))
    if g == "website":
        return rng.choice([
            "https://www.example-%d.com" % rng.randint(1, 9999),
            "http://zylker.com/p?a=1,b=2&c=%d" % rng.randint(1, 99),
            "https://müller-example.de/über-uns",
            "www.acme.test",
        ])
    if g == "employees":
        return rng.randint(1, 250000)
    if g == "money":
        return round(rng.uniform(0, 50_000_000), 2)
    if g == "percent":
        return round(rng.uniform(0, 100), 2)
    if g == "bool":
        return rng.random() < 0.25
    if g == "bigint":
        if rng.random() < 0.5:
            return rng.randint(2 ** 53 + 1, 2 ** 63 - 1)
        return rng.randint(-(10 ** 6), 10 ** 12)
    if g in ("street",):
        return rng.choice(STREETS)
    if g == "city":
        return ctx["place"][0]
    if g == "state":
        return ctx["place"][1] or None
    if g == "zip":
        return ctx["place"][2]
    if g == "country":
        return ctx["place"][3]
    if g == "description":
        n = rng.randint(1, 4)
        parts = [rng.choice(SENTENCES) for _ in range(n)]
        seps = [rng.choice(["\n", "\r\n", " ", ", ", "\n\n"]) for _ in range(n - 1)]
        out = parts[0]
        for sep, p in zip(seps, parts[1:]):
            out += sep + p
        return _clip(out, fd.length)
    if g == "future_date":
        d = datetime.fromtimestamp(ctx["anchor"], timezone.utc).date() + timedelta(days=rng.randint(-120, 365))
        return d.isoformat()
    if g == "birth_date":
        d = date(1940, 1, 1) + timedelta(days=rng.randint(0, 65 * 365))
        return d.isoformat()
    if g == "account":
        return account_lookup(rng.randint(0, 1000))
    v = inventory.gen_value(fd, rng, ctx)
    if v is inventory.NOGEN:
        raise ValueError("no generator for %s" % g)
    return v


def generate_record(seed, module, index, fdefs, anchor, now=None):
    """Initial record #index (now=None) or a record created at epoch `now`."""
    rng = rng_for(seed, module, index)
    ctx = {"anchor": anchor, "place": rng.choice(CITIES)}
    rec = {}
    for fd in fdefs:
        if fd.gen in SYSTEM_GENS:
            continue
        rec[fd.api_name] = gen_value(fd, rng, ctx)
    rec["id"] = record_id(module, index)
    # times
    if now is None:
        created = anchor - rng.randint(3600, 30 * 86400)
        if rng.random() < 0.5:
            modified = created
        else:
            modified = rng.randint(created, anchor)
        if rng.random() < 0.2:                      # encourage ties on the second
            modified = max(created, modified - modified % 3600)
    else:
        created = modified = int(now)
    names = {fd.api_name for fd in fdefs}
    if "Created_Time" in names:
        rec["Created_Time"] = created
    if "Modified_Time" in names:
        rec["Modified_Time"] = modified
    owner = rec.get("Owner") or rng.choice(USER_IDS)
    if "Created_By" in names:
        rec["Created_By"] = rng.choice(USER_IDS) if now is None else owner
    if "Modified_By" in names:
        rec["Modified_By"] = rng.choice(USER_IDS) if now is None else rec.get("Created_By", owner)
    if "Full_Name" in names:
        rec["Full_Name"] = full_name(rec.get("First_Name"), rec.get("Last_Name"))
    if "Last_Activity_Time" in names:
        rec["Last_Activity_Time"] = None if rng.random() < 0.3 else rng.randint(created, modified)
    if "Converted__s" in names:
        conv = now is None and rng.random() < 0.06
        rec["Converted__s"] = conv
        if conv:
            ct = rng.randint(created, modified)
            rec["Converted_Date_Time"] = ct
            rec["Converted_Account"] = account_lookup(rng.randint(0, 1000))
            rec["Lead_Conversion_Time"] = max(0, (ct - created) // 86400)
        else:
            rec["Converted_Date_Time"] = None
            rec["Converted_Account"] = None
            rec["Lead_Conversion_Time"] = None
    inventory.fill_record(rec, fdefs, rng, module, index, anchor)
    # order keys as the field list
    return {fd.api_name: rec.get(fd.api_name, () if fd.data_type in inventory.TUPLE_TYPES else None)
            for fd in fdefs}


def full_name(first, last):
    parts = [p for p in (first, last) if p]
    return " ".join(parts) if parts else None


def update_values(rng, fdefs, anchor, nfields=None):
    """Pick 1-3 editable fields and give them new values (dict api_name -> value)."""
    editable = [fd for fd in fdefs if fd.gen not in SYSTEM_GENS and not fd.read_only]
    k = nfields or rng.randint(1, 3)
    chosen = rng.sample(editable, min(k, len(editable)))
    ctx = {"anchor": anchor, "place": rng.choice(CITIES)}
    return {fd.api_name: gen_value(fd, rng, ctx) for fd in chosen}


# ------------------------------------------------------------ rendering ----
def make_tz(offset):
    """'+05:30' / '-08:00' / 'Z' -> datetime.timezone"""
    if offset in ("Z", "z", "+00:00", "-00:00", "UTC"):
        return timezone.utc
    sign = -1 if offset[0] == "-" else 1
    body = offset[1:] if offset[0] in "+-" else offset
    hh, _, mm = body.partition(":")
    return timezone(sign * timedelta(hours=int(hh), minutes=int(mm or 0)))


def fmt_dt(epoch, tz):
    if epoch is None:
        return None
    return datetime.fromtimestamp(int(epoch), tz).isoformat()


def json_value(fd, v, tz, ctx=None):
    """Internal value -> Records-API JSON shape (ctx: the parent record's
    subform context, for subform fields)."""
    dt = value_type(fd)
    if fd.data_type in inventory.OWN_TYPES or fd.gen == "tag":
        return inventory.json_value(fd, v, tz, ctx)[1]
    if dt == "datetime":
        return fmt_dt(v, tz)
    if dt == "ownerlookup":
        return dict(USER_BY_ID[v]) if v is not None else None
    if dt == "lookup":
        return {"name": v[1], "id": v[0]} if v is not None else None
    if dt == "multiselectpicklist":
        return list(v or ())
    if dt == "bigint":
        return str(v) if v is not None else None
    return v


@functools.lru_cache(maxsize=None)
def subform_defs(sf):
    """FieldDefs of a subform module (Invoiced_Items, ...)."""
    return tuple(build_fields(sf)[1])


def _subform_ctx(rec, fdefs):
    if not any(fd.data_type == "subform" for fd in fdefs):
        return None
    sfs = {fd.api_name: subform_defs(fd.meta["subform"]["module"]["api_name"])
           for fd in fdefs if fd.data_type == "subform"}
    if not sfs:
        return None
    name = rec.get("Subject") or rec.get("Name") or ""
    return {"subforms": sfs, "parent": (rec["id"], name)}


def record_json(rec, fdefs, tz, only=None, single=True):
    """Records-API JSON of a record.  only=None: every field (a single record
    by id, the truth).  With `only` (the `fields` parameter): those fields;
    single=False (ids= and list calls) leaves out subform, multiselectlookup
    and multiuserlookup fields and truncates rich text to 500 characters,
    as Get Records does (zoho-api.md §4.2, §4.3)."""
    ctx = _subform_ctx(rec, fdefs)
    if only is None:
        out = {}
        for fd in fdefs:
            out[fd.api_name] = json_value(fd, rec.get(fd.api_name), tz, ctx)
            if fd.gen == "what":
                out["$se_module"] = rec[fd.api_name][2] if rec.get(fd.api_name) else None
        return out
    out = {"id": rec["id"]}
    byname = {fd.api_name: fd for fd in fdefs}
    for name in only:
        fd = byname.get(name)
        if fd is not None:
            if not single and fd.data_type in inventory.SINGLE_ONLY:
                continue
            v = json_value(fd, rec.get(name), tz, ctx)
            if not single and fd.meta.get("textarea", {}).get("type") == "rich_text" and v:
                v = v[:inventory.RICH_TEXT_LIMIT]
            out[name] = v
            if fd.gen == "what":
                out["$se_module"] = rec[name][2] if rec.get(name) else None
        elif name == "$converted":
            out[name] = bool(rec.get("Converted__s", False))
        elif name == "$approval_state":
            out[name] = "approved"
        elif name == "$se_module" and "What_Id" in byname:
            out[name] = rec["What_Id"][2] if rec.get("What_Id") else None
    return out


def csv_cell_fn(fd, tz, sub=None):
    """Return a function internal value -> CSV cell text ('' for null)."""
    dt = value_type(fd)
    own = inventory.csv_cell_fn(fd)
    if own is not None and sub is None:
        return own
    if sub is not None:                      # dot notation on lookups
        if dt == "ownerlookup":
            def f(v):
                if v is None:
                    return ""
                u = USER_BY_ID[v]
                first, _, last = u["name"].partition(" ")
                return {"name": u["name"], "id": u["id"], "email": u["email"],
                        "first_name": first if last else "", "last_name": last or first,
                        "full_name": u["name"]}.get(sub, "")
            return f
        if dt == "lookup":
            return lambda v: "" if v is None else ({"id": v[0], "name": v[1]}.get(sub, v[1]))
    if dt == "datetime":
        return lambda v: "" if v is None else datetime.fromtimestamp(v, tz).isoformat()
    if dt == "boolean":
        return lambda v: "" if v is None else ("true" if v else "false")
    if dt == "multiselectpicklist":
        return lambda v: ";".join(v) if v else ""
    if dt == "lookup":
        return lambda v: "" if v is None else v[0]
    if dt in ("integer", "bigint", "double", "currency", "percent"):
        return lambda v: "" if v is None else repr(v)
    return lambda v: "" if v is None else v
