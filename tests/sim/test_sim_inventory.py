"""Deals, Accounts, inventory modules and activities: realistic field tables,
every documented field type in its JSON and CSV forms, line items as
subforms (single-record GET only, the Subform API listing, edits through the
control API and the mutation generator), users, $se_module, rich text."""

import time

import pytest

from simcsv import read_zip

READ = "/crm/bulk/v6/read"
STANDARD = ["Deals", "Accounts", "Products", "Price_Books", "Quotes", "Sales_Orders", "Purchase_Orders",
            "Invoices", "Vendors", "Cases", "Tasks", "Calls", "Events"]
LINES = {"Quotes": "Quoted_Items", "Sales_Orders": "Ordered_Items", "Invoices": "Invoiced_Items",
         "Purchase_Orders": "Purchase_Items"}
ALL_TYPES = {"text", "email", "phone", "website", "picklist", "multiselectpicklist", "textarea", "integer",
             "bigint", "double", "currency", "percent", "boolean", "date", "datetime", "lookup",
             "ownerlookup", "userlookup", "multiselectlookup", "multiuserlookup", "subform", "fileupload",
             "imageupload", "autonumber", "layout"}
NOT_EXPORTED = {"subform", "multiselectlookup", "multiuserlookup", "fileupload", "imageupload"}


@pytest.fixture(scope="module")
def s():
    from simhelpers import Sim
    sim = Sim("--modules", ",".join("%s:12" % m for m in STANDARD) + ",Leads:3,My_Custom:2",
              "--bulk-polls", "0", "--bulk-step-ms", "0", "--tz-offset", "+05:30", "--seed", "4",
              "--scopes", "ZohoCRM.modules.ALL,ZohoCRM.bulk.READ,ZohoCRM.notifications.ALL,"
                          "ZohoCRM.settings.fields.READ,ZohoCRM.users.READ")
    sim.ctl("POST", "/_sim/config", {"download_limit_per_min": 0})
    yield sim
    sim.stop()


def fields(s, module):
    r = s.api("GET", "/crm/v6/settings/fields", query={"module": module})
    assert r.status == 200, r
    return {f["api_name"]: f for f in r.json["fields"]}


def bulk(s, query):
    r = s.api("POST", READ, {"query": query})
    assert r.status == 201, r
    jid = r.json["data"][0]["details"]["id"]
    st = s.api("GET", "%s/%s" % (READ, jid)).json["data"][0]
    assert st["state"] == "COMPLETED", st
    r = s.api("GET", "%s/%s/result" % (READ, jid))
    assert r.status == 200, r
    return read_zip(r.body, jid)[1]


def with_lines(s, module):
    t = s.truth(module)
    return t, [r for r in t["records"] if r[LINES[module]]]


def test_standard_tables_and_every_type(s):
    types = set()
    for m in STANDARD:
        by = fields(s, m)
        assert "id" in by and "Owner" in by and "Modified_Time" in by, m
        assert not any(n.startswith("Custom_Text") or n == "Name" for n in by), m
        for f in by.values():
            types.add(f["data_type"])
            assert f["json_type"] in ("string", "integer", "double", "boolean", "jsonobject", "jsonarray")
    assert ALL_TYPES <= types, ALL_TYPES - types
    deals = fields(s, "Deals")
    assert {"Deal_Name", "Stage", "Amount", "Closing_Date", "Account_Name"} <= set(deals)
    assert deals["Account_Name"]["lookup"]["module"]["api_name"] == "Accounts"
    assert deals["Tag"]["data_type"] == "text" and deals["Tag"]["json_type"] == "jsonarray"
    assert deals["Partner_Accounts"]["multiselectlookup"]["connected_module"]["api_name"] == "Accounts"
    inv = fields(s, "Invoices")
    assert {"Subject", "Invoice_Date", "Due_Date", "Status", "Account_Name", "Sub_Total", "Tax", "Adjustment",
            "Grand_Total", "Invoiced_Items"} <= set(inv)
    assert inv["Payment_Notes"]["textarea"] == {"type": "rich_text"}
    assert inv["Invoice_Number"]["data_type"] == "autonumber"
    # custom modules keep the generic table
    assert "Name" in fields(s, "My_Custom")


@pytest.mark.parametrize("parent,sf", sorted(LINES.items()))
def test_line_item_subform_metadata(s, parent, sf):
    f = fields(s, parent)[sf]
    assert f["data_type"] == "subform" and f["json_type"] == "jsonarray"
    assert f["subform"]["module"]["api_name"] == sf
    sub = fields(s, sf)
    assert {"id", "Product_Name", "Quantity", "List_Price", "Discount", "Tax", "Total", "Net_Total",
            "Description", "Sequence_Number", "Parent_Id"} <= set(sub)
    assert sub["Product_Name"]["lookup"]["module"]["api_name"] == "Products"
    assert sub["Parent_Id"]["lookup"]["module"]["api_name"] == parent


def test_lines_only_on_single_record_get(s):
    t, withl = with_lines(s, "Invoices")
    assert 0 < len(withl) < len(t["records"]) or len(withl) == len(t["records"])
    counts = [len(r["Invoiced_Items"]) for r in t["records"]]
    assert max(counts) <= 5 and min(counts) >= 0
    rec = withl[0]
    one = s.api("GET", "/crm/v6/Invoices/%s" % rec["id"]).json["data"][0]
    assert one["Invoiced_Items"] == rec["Invoiced_Items"]
    for line in one["Invoiced_Items"]:
        assert line["Parent_Id"] == {"name": rec["Subject"], "id": rec["id"]}
        assert len(line["id"]) == 19
    # ids= and listing leave subform and multiselectlookup fields out
    r = s.api("GET", "/crm/v6/Invoices", query={"ids": rec["id"], "fields": "Subject,Invoiced_Items"})
    assert r.status == 200 and set(r.json["data"][0]) == {"id", "Subject"}
    d = s.truth("Deals")["records"][0]
    r = s.api("GET", "/crm/v6/Deals", query={"fields": "Deal_Name,Partner_Accounts,Deal_Team,Contract"})
    assert r.status == 200
    assert all(set(x) == {"id", "Deal_Name", "Contract"} for x in r.json["data"])
    one = s.api("GET", "/crm/v6/Deals/%s" % d["id"]).json["data"][0]
    assert one["Partner_Accounts"] == d["Partner_Accounts"] and one["Deal_Team"] == d["Deal_Team"]
    one = s.api("GET", "/crm/v6/Deals/%s" % d["id"], query={"fields": "Partner_Accounts"}).json["data"][0]
    assert "Partner_Accounts" in one


def test_json_shapes_of_new_types(s):
    d = next(r for r in s.truth("Deals")["records"] if r["Partner_Accounts"] and r["Deal_Team"])
    assert set(d["Partner_Accounts"][0]) == {"Accounts", "id"}
    assert set(d["Partner_Accounts"][0]["Accounts"]) == {"name", "id"}
    assert set(d["Deal_Team"][0]) == {"users", "id"} and "email" in d["Deal_Team"][0]["users"]
    assert d["Layout"] is None or set(d["Layout"]) == {"name", "id"}
    tagged = [r for r in s.truth("Deals")["records"] if r["Tag"]]
    assert tagged and set(tagged[0]["Tag"][0]) == {"name", "id", "color_code"}
    withf = [r for r in s.truth("Deals")["records"] if r["Contract"]]
    assert withf and {"File_Name__s", "Size__s", "File_Id__s", "id"} <= set(withf[0]["Contract"][0])
    imgs = [r for r in s.truth("Products")["records"] if r["Product_Image"]]
    assert imgs and {"File_Name__s", "Preview_Id__s", "File_Id__s"} <= set(imgs[0]["Product_Image"][0])
    inv = s.truth("Invoices")["records"]
    assert [r["Invoice_Number"] for r in inv[:2]] == ["INV-00001", "INV-00002"]
    for r in inv:
        sub = round(sum(x["Net_Total"] for x in r["Invoiced_Items"]), 2)
        assert r["Sub_Total"] == sub
        assert r["Grand_Total"] == round(sub - (r["Discount"] or 0) + (r["Tax"] or 0) + (r["Adjustment"] or 0), 2)


def test_bulk_refuses_and_omits_unexportable_fields(s):
    for m in ("Deals", "Invoices", "Products"):
        by = fields(s, m)
        for name, f in by.items():
            if f["data_type"] in NOT_EXPORTED:
                r = s.api("POST", READ, {"query": {"module": {"api_name": m}, "fields": ["id", name]}})
                assert r.status == 400 and r.json["code"] == "NOT_SUPPORTED", (m, name, r)
                assert r.json["details"]["api_name"] == name
        rows = bulk(s, {"module": {"api_name": m}})
        header = rows[0]
        assert not any(by[h]["data_type"] in NOT_EXPORTED for h in header if h in by), header
        assert {n for n, f in by.items() if f["data_type"] not in NOT_EXPORTED} <= set(header)


def test_bulk_csv_forms(s):
    t = {r["id"]: r for r in s.truth("Deals")["records"]}
    rows = bulk(s, {"module": {"api_name": "Deals"}, "fields": ["Tag", "Layout", "Reviewer", "Account_Name"]})
    assert rows[0] == ["id", "Tag", "Layout", "Reviewer", "Account_Name"]
    for row in rows[1:]:
        rec = t[row[0]]
        assert row[1] == ";".join(x["name"] for x in rec["Tag"])
        assert row[2] == (rec["Layout"]["id"] if rec["Layout"] else "")
        assert row[3] == (rec["Reviewer"]["id"] if rec["Reviewer"] else "")
        assert row[4] == (rec["Account_Name"]["id"] if rec["Account_Name"] else "")
    t = {r["id"]: r for r in s.truth("Invoices")["records"]}
    rows = bulk(s, {"module": {"api_name": "Invoices"}, "fields": ["Invoice_Number", "Payment_Notes"]})
    for row in rows[1:]:
        assert row[1] == t[row[0]]["Invoice_Number"]
        assert row[2] == (t[row[0]]["Payment_Notes"] or "")        # rich text in full


def test_se_module(s):
    for m in ("Tasks", "Calls", "Events"):
        by = fields(s, m)
        assert by["What_Id"]["data_type"] == "lookup"
        recs = s.truth(m)["records"]
        linked = [r for r in recs if r["What_Id"]]
        assert linked and all(r["$se_module"] for r in linked)
        assert all(r["$se_module"] is None for r in recs if not r["What_Id"])
        r = s.api("GET", "/crm/v6/%s" % m, query={"ids": ",".join(x["id"] for x in recs),
                                                   "fields": "What_Id,Subject" if m != "Events" else "What_Id"})
        got = {x["id"]: x for x in r.json["data"]}
        for rec in recs:
            assert got[rec["id"]]["What_Id"] == rec["What_Id"]
            assert got[rec["id"]]["$se_module"] == rec["$se_module"]
        rows = bulk(s, {"module": {"api_name": m}, "fields": ["What_Id", "$se_module"]})
        assert rows[0] == ["id", "What_Id", "$se_module"]
        byid = {x["id"]: x for x in recs}
        for row in rows[1:]:
            rec = byid[row[0]]
            assert row[1] == (rec["What_Id"]["id"] if rec["What_Id"] else "")
            assert row[2] == (rec["$se_module"] or "")
        allrows = bulk(s, {"module": {"api_name": m}})
        i = allrows[0].index("What_Id")
        assert allrows[0][i + 1] == "$se_module"


def test_rich_text_truncated_by_get_records(s):
    recs = s.truth("Invoices")["records"] + s.truth("Cases")["records"]
    long = [r for r in recs if (r.get("Payment_Notes") or r.get("Resolution") or "") and
            len(r.get("Payment_Notes") or r.get("Resolution")) > 500]
    assert long, "the generator makes rich text over 500 characters now and then"
    for rec in long:
        m = "Invoices" if "Payment_Notes" in rec else "Cases"
        f = "Payment_Notes" if m == "Invoices" else "Resolution"
        r = s.api("GET", "/crm/v6/%s" % m, query={"ids": rec["id"], "fields": f})
        assert r.json["data"][0][f] == rec[f][:500]
        r = s.api("GET", "/crm/v6/%s/%s" % (m, rec["id"]))
        assert r.json["data"][0][f] == rec[f]
        r = s.api("GET", "/crm/v6/%s/%s/actions/fetch_full_data" % (m, rec["id"]))
        assert r.status == 200 and r.json["data"][0] == {"id": rec["id"], f: rec[f]}


def test_subform_listing(s):
    t = s.truth("Invoices")
    lines = t["subforms"]["Invoiced_Items"]
    assert len(lines) == sum(len(r["Invoiced_Items"]) for r in t["records"])
    r = s.api("GET", "/crm/v6/Invoiced_Items")
    assert r.status == 400 and r.json["code"] == "REQUIRED_PARAM_MISSING"
    r = s.api("GET", "/crm/v6/Invoiced_Items", query={"fields": ",".join(["Quantity"] * 51)})
    assert r.status == 400 and r.json["code"] == "LIMIT_EXCEEDED"
    s.ctl("DELETE", "/_sim/credits")
    got, tok, calls = [], None, 0
    while True:
        q = {"fields": "Product_Name,Quantity,Net_Total", "per_page": "7", "sort_order": "asc"}
        if tok:
            q["page_token"] = tok
        r = s.api("GET", "/crm/v6/Invoiced_Items", query=q)
        calls += 1
        assert r.status == 200, r
        got += r.json["data"]
        tok = r.json["info"]["next_page_token"]
        if not r.json["info"]["more_records"]:
            break
    assert [x["id"] for x in got] == [x["id"] for x in lines]
    for x, line in zip(got, lines):
        assert x["Parent_Id"] == line["Parent_Id"] and x["Quantity"] == line["Quantity"]
        assert set(x) == {"id", "Product_Name", "Quantity", "Net_Total", "Parent_Id"}
    cr = s.ctl("GET", "/_sim/credits")
    assert cr["calls_by_endpoint"]["records"] == calls and cr["by_endpoint"]["records"] == calls


def test_subform_bulk_read(s):
    lines = s.truth("Quotes")["subforms"]["Quoted_Items"]
    rows = bulk(s, {"module": {"api_name": "Quoted_Items"}, "fields": ["Parent_Id", "Quantity"]})
    assert rows[0] == ["id", "Parent_Id", "Quantity"]
    assert [(r[0], r[1]) for r in rows[1:]] == [(x["id"], x["Parent_Id"]["id"]) for x in lines]


def test_edit_add_remove_lines(make_sim, receiver):
    s = make_sim("--modules", "Invoices:4", "--seed", "2")
    r = s.api("POST", "/crm/v6/actions/watch", {"watch": [{"channel_id": "77", "events": ["Invoices.all"],
                                                           "notify_url": receiver.url + "/n"}]})
    assert r.status == 200, r
    rec = next(x for x in s.truth("Invoices")["records"] if len(x["Invoiced_Items"]) >= 2)
    old = rec["Invoiced_Items"]
    time.sleep(1.1)
    new = [{"id": old[0]["id"], "Quantity": 99},                       # edited
           {"Product_Name": {"id": "5725767800900007919", "name": "Widget"}, "Quantity": 2,
            "List_Price": 10.5}]                                        # added; the others removed
    upd = s.ctl("PATCH", "/_sim/records/Invoices/%s" % rec["id"], {"values": {"Invoiced_Items": new}})
    assert "Invoiced_Items" in upd["$changed_fields"]
    assert upd["Modified_Time"] > rec["Modified_Time"]
    lines = upd["Invoiced_Items"]
    assert [x["id"] for x in lines][0] == old[0]["id"] and len(lines) == 2
    assert lines[0]["Quantity"] == 99 and lines[0]["Product_Name"] == old[0]["Product_Name"]
    assert lines[1]["id"] not in {x["id"] for x in old} and lines[1]["Total"] == 21.0
    b = receiver.wait_for(1)[0]["body"]
    assert b["operation"] == "update" and b["ids"] == [rec["id"]]
    assert "Invoiced_Items" in b["affected_fields"][0][rec["id"]]
    t = s.truth("Invoices")
    assert [x["id"] for x in t["subforms"]["Invoiced_Items"] if x["Parent_Id"]["id"] == rec["id"]] == \
        sorted((x["id"] for x in lines), key=int)
    s.ctl("DELETE", "/_sim/records/Invoices/%s" % rec["id"])
    t = s.truth("Invoices")
    assert not [x for x in t["subforms"]["Invoiced_Items"] if x["Parent_Id"]["id"] == rec["id"]]
    r = s.api("GET", "/crm/v6/Invoiced_Items", query={"fields": "Quantity"})
    assert rec["id"] not in {x["Parent_Id"]["id"] for x in r.json["data"]}


def test_mutate_edits_adds_and_removes_lines(make_sim):
    s = make_sim("--modules", "Invoices:20", "--seed", "3")
    before = {x["id"]: x for x in s.truth("Invoices")["subforms"]["Invoiced_Items"]}
    s.ctl("POST", "/_sim/mutate", {"module": "Invoices", "count": 60, "seed": 5,
                                   "mix": {"create": 0.2, "update": 0.7, "delete": 0.1}})
    after = {x["id"]: x for x in s.truth("Invoices")["subforms"]["Invoiced_Items"]}
    live = {r["id"] for r in s.truth("Invoices")["records"]}
    assert set(before) - set(after), "lines removed"
    assert set(after) - set(before), "lines added"
    assert any(after[k] != before[k] for k in set(after) & set(before)), "lines edited"
    assert all(x["Parent_Id"]["id"] in live for x in after.values())


def test_determinism(make_sim):
    a = make_sim("--modules", "Invoices:6,Tasks:4", "--seed", "9", "--anchor", "1780000000")
    b = make_sim("--modules", "Invoices:6,Tasks:4", "--seed", "9", "--anchor", "1780000000")
    assert a.truth("Invoices")["records"] == b.truth("Invoices")["records"]
    assert a.truth("Tasks")["records"] == b.truth("Tasks")["records"]


def test_users(s):
    r = s.api("GET", "/crm/v6/users", query={"type": "AllUsers"})
    assert r.status == 200, r
    users = r.json["users"]
    assert len(users) == 6 and r.json["info"]["more_records"] is False
    for u in users:
        assert {"id", "full_name", "email", "role", "profile", "status", "Modified_Time"} <= set(u)
        assert set(u["role"]) == {"name", "id"} and u["status"] == "active"
    last = max(u["Modified_Time"] for u in users)
    r = s.api("GET", "/crm/v6/users", query={"type": "AllUsers"}, headers={"If-Modified-Since": last})
    assert r.status == 304
    r = s.api("GET", "/crm/v6/users", query={"type": "AllUsers", "per_page": "4", "page": "2"})
    assert len(r.json["users"]) == 2 and r.json["info"]["page"] == 2
    new = s.ctl("POST", "/_sim/users", {"full_name": "Nova Quinn", "email": "nova@zylker.com"})
    s.ctl("PATCH", "/_sim/users/%s" % users[1]["id"], {"status": "disabled"})
    r = s.api("GET", "/crm/v6/users", query={"type": "AllUsers"}, headers={"If-Modified-Since": last})
    assert r.status == 200 and {u["id"] for u in r.json["users"]} == {new["id"], users[1]["id"]}
    assert {u["id"]: u["status"] for u in r.json["users"]}[users[1]["id"]] == "disabled"
    r = s.api("GET", "/crm/v6/users", query={"type": "ActiveUsers"})
    assert users[1]["id"] not in {u["id"] for u in r.json["users"]} and len(r.json["users"]) == 6
    # a new user can own records
    rec = s.ctl("POST", "/_sim/records/Deals", {"values": {"Owner": {"id": new["id"]}}})
    assert rec["Owner"] == {"name": "Nova Quinn", "id": new["id"], "email": "nova@zylker.com"}
    s.ctl("DELETE", "/_sim/credits")
    s.api("GET", "/crm/v6/users", query={"type": "AllUsers"})
    assert s.ctl("GET", "/_sim/credits")["by_endpoint"] == {"users": 1}


def test_users_scope(make_sim):
    s = make_sim("--modules", "Leads:2")          # the default scopes lack ZohoCRM.users.READ
    r = s.api("GET", "/crm/v6/users", query={"type": "AllUsers"})
    assert r.status == 401 and r.json["code"] == "OAUTH_SCOPE_MISMATCH"
