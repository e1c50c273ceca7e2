"""Fields metadata."""

KEYS = {"api_name", "id", "field_label", "display_label", "data_type", "json_type", "length", "read_only",
        "custom_field", "system_mandatory", "pick_list_values", "lookup"}


def test_leads_fields(sim):
    r = sim.api("GET", "/crm/v6/settings/fields", query={"module": "Leads"})
    assert r.status == 200
    fields = r.json["fields"]
    assert 38 <= len(fields) <= 48
    by = {f["api_name"]: f for f in fields}
    for f in fields:
        assert KEYS <= set(f)
        assert len(f["id"]) == 19 and f["id"].isdigit()
    assert by["Last_Name"]["system_mandatory"] is True
    assert by["id"]["data_type"] == "bigint" and by["id"]["json_type"] == "string"
    assert by["Owner"]["data_type"] == "ownerlookup" and by["Owner"]["json_type"] == "jsonobject"
    assert by["Full_Name"]["read_only"] is True
    assert by["Product_Interest"]["data_type"] == "multiselectpicklist"
    assert by["Product_Interest"]["custom_field"] is True
    assert all(";" not in v["actual_value"] for v in by["Product_Interest"]["pick_list_values"])
    assert by["Converted_Account"]["lookup"]["module"]["api_name"] == "Accounts"
    assert {by[n]["data_type"] for n in by} >= {"text", "email", "phone", "website", "picklist", "textarea",
                                                 "integer", "bigint", "double", "currency", "percent",
                                                 "boolean", "date", "datetime", "lookup", "ownerlookup",
                                                 "multiselectpicklist"}
    assert by["Lead_Source"]["pick_list_values"][1]["actual_value"] == "Advertisement"


def test_contacts_and_errors(sim):
    fields = sim.api("GET", "/crm/v6/settings/fields", query={"module": "Contacts"}).json["fields"]
    assert 18 <= len(fields) <= 22
    assert {"Account_Name", "Date_of_Birth", "Mailing_City"} <= {f["api_name"] for f in fields}
    r = sim.api("GET", "/crm/v6/settings/fields", query={"module": "Nope"})
    assert r.status == 400 and r.json["code"] == "INVALID_MODULE"
    r = sim.api("GET", "/crm/v6/settings/fields")
    assert r.status == 400 and r.json["code"] == "REQUIRED_PARAM_MISSING"


def test_generic_module(make_sim):
    s = make_sim("--modules", "Deals:3,My_Custom:2")
    fields = s.api("GET", "/crm/v6/settings/fields", query={"module": "My_Custom"}).json["fields"]
    assert fields[0]["api_name"] == "id" and any(f["api_name"] == "Modified_Time" for f in fields)
    assert len(s.truth("My_Custom")["records"]) == 2


def test_wide_module(make_sim):
    """Leads:N:120 pads Leads with custom text fields to 120 fields; a record
    carries them, and Get Records still caps a call at 50 fields."""
    s = make_sim("--modules", "Leads:5:120")
    fields = s.api("GET", "/crm/v6/settings/fields", query={"module": "Leads"}).json["fields"]
    names = [f["api_name"] for f in fields]
    assert len(fields) == 120 and len(set(names)) == 120
    assert "Custom_Text_1" in names and "Last_Name" in names
    custom = [f for f in fields if f["api_name"].startswith("Custom_Text_")]
    assert all(f["data_type"] == "text" and f["custom_field"] for f in custom)
    rid = s.truth()["records"][0]["id"]
    r = s.api("GET", "/crm/v6/Leads", query={"ids": rid, "fields": ",".join(names[:51])})
    assert r.status == 400, r.json
