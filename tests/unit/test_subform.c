/* test_subform.c — line items (subform.h): the pure helpers (child table
 * names, the cost choice between single-record GETs and the subform
 * listing, the price of the new calls), and, against a real PostgreSQL
 * (ZCRM_TEST_CONNINFO), the rule the line sets follow: a newer read
 * replaces a parent's lines (a removed line goes), an older read changes
 * nothing, a tombstoned parent loses its lines, and a parent newer than
 * the read keeps them stale. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "db.h"
#include "json.h"
#include "merge.h"
#include "subform.h"
#include "testdb.h"
#include "zoho.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_SCHEMA "zcrm_unit_subform"

static void test_table_name(void **state)
{
	(void)state;
	char *t = subform_table_name("invoices", "Invoiced_Items");
	assert_string_equal(t, "invoices__invoiced_items");
	free(t);
	t = subform_table_name("sales_orders", "Ordered_Items");
	assert_string_equal(t, "sales_orders__ordered_items");
	free(t);
	/* PostgreSQL's identifiers stop at 63 bytes. */
	t = subform_table_name("a_custom_module_with_a_rather_long_name",
			       "And_A_Custom_Subform_With_An_Even_Longer_Name");
	assert_int_equal(strlen(t), 63);
	assert_memory_equal(t, "a_custom_module_with_a_rather_long_name__and_", 45);
	free(t);
}

static void test_types(void **state)
{
	(void)state;
	assert_true(subform_is_field("subform"));
	assert_false(subform_is_field("lookup"));
	assert_false(subform_is_field(NULL));
	assert_true(subform_by_id_only("multiselectlookup"));
	assert_true(subform_by_id_only("multiuserlookup"));
	assert_false(subform_by_id_only("multiselectpicklist"));
	assert_false(subform_by_id_only(NULL));
}

/* ceil(lines / 200), and at least one call (an empty listing still asks). */
static void test_listing_calls(void **state)
{
	(void)state;
	assert_int_equal(subform_listing_calls(0), 1);
	assert_int_equal(subform_listing_calls(1), 1);
	assert_int_equal(subform_listing_calls(200), 1);
	/* past a page, the edits and deletions made while it ran: 2 more */
	assert_int_equal(subform_listing_calls(201), 4);
	assert_int_equal(subform_listing_calls(10000), 52);
}

/* n single GETs against Get Records of the ids plus the whole listing. */
static void test_cost_choice(void **state)
{
	(void)state;
	/* one notified invoice: 1 GET beats 1 + the listing */
	assert_false(subform_listing_cheaper(1, 1, 1));
	/* 100 invoices of a 3,000-line org: 100 GETs vs 1 + 15 + 2 */
	assert_true(subform_listing_cheaper(100, zoho_fetch_calls(100, 40), subform_listing_calls(3000)));
	/* 20 invoices of a 100,000-line org: 20 GETs vs 1 + 500 + 2 */
	assert_false(subform_listing_cheaper(20, zoho_fetch_calls(20, 40), subform_listing_calls(100000)));
	/* a tie goes to the single GETs */
	assert_false(subform_listing_cheaper(10, 1, 9));
	/* stale parents after a first load: no lines held yet */
	assert_true(subform_listing_cheaper(5000, 0, subform_listing_calls(0)));
}

/* The calls the line items add are priced as Zoho prices them: 1 each. */
static void test_prices(void **state)
{
	(void)state;
	int credits = -1;
	enum zoho_endpoint ep =
		zoho_call_endpoint(NULL, "/crm/v6/Invoices/5725767000003000064?converted=both",
				   &credits);
	assert_string_equal(zoho_endpoint_name(ep), "record_by_id");
	assert_int_equal(credits, 1);
	ep = zoho_call_endpoint(NULL,
				"/crm/v6/Invoiced_Items?fields=Parent_Id,Quantity&per_page=200&page=3",
				&credits);
	assert_string_equal(zoho_endpoint_name(ep), "records");
	assert_int_equal(credits, 1);
	ep = zoho_call_endpoint(NULL, "/crm/v6/Invoiced_Items?fields=Parent_Id&per_page=200"
				      "&page_token=abc",
				&credits);
	assert_string_equal(zoho_endpoint_name(ep), "records");
	assert_int_equal(credits, 1);
}

/* multiselectlookup / multiuserlookup: the ids of the linked records
 * (users), not the link ids; bigint[] text. */
static void test_linked_ids(void **state)
{
	(void)state;
	const char *msl = "[{\"Accounts\":{\"name\":\"Zylker\",\"id\":\"5725767000000411001\"},"
			  "\"id\":\"5725767000000800001\"},{\"Accounts\":{\"name\":\"B\","
			  "\"id\":\"5725767000000411002\"},\"id\":\"5725767000000800002\"}]";
	const char *mul = "[{\"users\":{\"name\":\"P\",\"id\":\"5725767000000235011\","
			  "\"email\":\"p@x\"},\"id\":\"5725767000000800003\"}]";
	struct json_object *o = NULL;
	char err[JSON_ERR_LEN], *cell;

	assert_int_equal(schema_field_kind("multiselectlookup", "jsonarray"), FIELD_IDS);
	assert_int_equal(schema_field_kind("multiuserlookup", "jsonarray"), FIELD_IDS);
	assert_string_equal(schema_kind_pg_type(FIELD_IDS), "bigint[]");
	assert_int_equal(json_parse(msl, strlen(msl), &o, err), RC_OK);
	cell = schema_json_cell(o, FIELD_IDS);
	assert_string_equal(cell, "{5725767000000411001,5725767000000411002}");
	free(cell);
	json_object_put(o);
	assert_int_equal(json_parse(mul, strlen(mul), &o, err), RC_OK);
	cell = schema_json_cell(o, FIELD_IDS);
	assert_string_equal(cell, "{5725767000000235011}");
	free(cell);
	json_object_put(o);
	assert_int_equal(json_parse("[]", 2, &o, err), RC_OK);
	assert_null(schema_json_cell(o, FIELD_IDS));
	json_object_put(o);
}

/* ---- against PostgreSQL ---- */

static int db_setup(void **state)
{
	struct db *db = testdb_open(TEST_SCHEMA, true);

	if (db && db_script(db,
			    "CREATE TABLE invoices (id bigint PRIMARY KEY, modified_time timestamptz,"
			    " deleted_at timestamptz, synced_at timestamptz, source text);"
			    "INSERT INTO subforms (module, field, subform_module, table_name)"
			    " VALUES ('Invoices', 'Invoiced_Items', 'Invoiced_Items',"
			    " 'invoices__invoiced_items');"
			    "INSERT INTO subform_fields (table_name, api_name, column_name, data_type,"
			    " pg_type) VALUES"
			    " ('invoices__invoiced_items', 'Quantity', 'quantity', 'double', 'numeric'),"
			    " ('invoices__invoiced_items', 'Product_Name', 'product_name', 'lookup',"
			    "  'bigint');"
			    "CREATE TABLE invoices__invoiced_items (id bigint PRIMARY KEY,"
			    " parent_id bigint NOT NULL, quantity numeric, product_name bigint,"
			    " synced_at timestamptz NOT NULL DEFAULT now());")) {
		fprintf(stderr, "setup: %s\n", db_error(db));
		db_close(db);
		db = NULL;
	}
	*state = db;
	return db ? 0 : -1;
}

static char *value(struct db *db, const char *sql)
{
	char *v = NULL;
	if (db_query_value(db, sql, 0, NULL, &v) != RC_OK)
		fail_msg("%s: %s", sql, db_error(db));
	return v;
}

static void assert_value(struct db *db, const char *sql, const char *want)
{
	char *v = value(db, sql);
	if (!v || strcmp(v, want))
		fail_msg("%s: %s, expected %s", sql, v ? v : "NULL", want);
	free(v);
}

/* Write the record (JSON text) read at asked, in one transaction. */
static void write_record(struct db *db, const struct subform_set *set, const char *json,
			 int64_t asked)
{
	struct json_object *arr = json_object_new_array(), *rec = NULL;
	struct subform_stats st = {0};
	char err[JSON_ERR_LEN];

	if (json_parse(json, strlen(json), &rec, err) != RC_OK)
		fail_msg("%s", err);
	json_object_array_add(arr, rec);
	assert_int_equal(db_begin(db), RC_OK);
	if (subform_write_records(db, set, arr, asked, &st) != RC_OK)
		fail_msg("write: %s", db_error(db));
	assert_int_equal(db_commit(db), RC_OK);
	json_object_put(arr);
}

static void test_line_sets(void **state)
{
	struct db *db = *state;
	struct subform_set *set = NULL;

	assert_int_equal(subform_load_set(db, "Invoices", &set), RC_OK);
	assert_int_equal(set->n, 1);
	assert_string_equal(set->sf[0].cols->table, "invoices__invoiced_items");
	assert_int_equal(set->sf[0].cols->ncols, 2);

	/* 2026-01-01T10:00:00Z = 1767261600 */
	assert_int_equal(db_exec(db, "INSERT INTO invoices VALUES (1, '2026-01-01T10:00:00Z')", 0,
				 NULL, NULL),
			 RC_OK);
	write_record(db, set,
		     "{\"id\":\"1\",\"Modified_Time\":\"2026-01-01T10:00:00+00:00\","
		     "\"Invoiced_Items\":[{\"id\":\"11\",\"Quantity\":2,\"Product_Name\":"
		     "{\"name\":\"P\",\"id\":\"77\"}},{\"id\":\"12\",\"Quantity\":1.5}]}",
		     1767261600);
	assert_value(db, "SELECT string_agg(id || ':' || quantity || ':' ||"
			 " coalesce(product_name::text, '-'), ',' ORDER BY id)"
			 " FROM invoices__invoiced_items WHERE parent_id = 1",
		     "11:2:77,12:1.5:-");

	/* A newer read: line 12 removed, 11 edited, 13 added. */
	assert_int_equal(db_exec(db, "UPDATE invoices SET modified_time = '2026-01-01T10:05:00Z'",
				 0, NULL, NULL),
			 RC_OK);
	write_record(db, set,
		     "{\"id\":\"1\",\"Modified_Time\":\"2026-01-01T10:05:00+00:00\","
		     "\"Invoiced_Items\":[{\"id\":\"11\",\"Quantity\":3},{\"id\":\"13\","
		     "\"Quantity\":4}]}",
		     1767261900);
	assert_value(db, "SELECT string_agg(id || ':' || quantity, ',' ORDER BY id)"
			 " FROM invoices__invoiced_items",
		     "11:3,13:4");

	/* An older read (a late, slow fetch) changes nothing. */
	write_record(db, set,
		     "{\"id\":\"1\",\"Modified_Time\":\"2026-01-01T10:00:00+00:00\","
		     "\"Invoiced_Items\":[{\"id\":\"12\",\"Quantity\":9}]}",
		     1767261700);
	assert_value(db, "SELECT string_agg(id || ':' || quantity, ',' ORDER BY id)"
			 " FROM invoices__invoiced_items",
		     "11:3,13:4");

	/* A record without its subform (Get Records by ids) leaves the lines. */
	write_record(db, set, "{\"id\":\"1\",\"Modified_Time\":\"2026-01-01T10:05:00+00:00\"}",
		     1767262000);
	assert_value(db, "SELECT count(*) FROM invoices__invoiced_items", "2");

	/* The parent moves on (a bulk export): the set is stale. */
	assert_int_equal(db_exec(db, "UPDATE invoices SET modified_time = '2026-01-01T11:00:00Z'",
				 0, NULL, NULL),
			 RC_OK);
	int64_t *ids = NULL;
	size_t n = 0;
	assert_int_equal(subform_stale_parents(db, set, &ids, &n), RC_OK);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], 1);
	free(ids);
	/* An empty subform (null) is an empty set. */
	write_record(db, set,
		     "{\"id\":\"1\",\"Modified_Time\":\"2026-01-01T11:00:00+00:00\","
		     "\"Invoiced_Items\":null}",
		     1767265200);
	assert_value(db, "SELECT count(*) FROM invoices__invoiced_items", "0");
	assert_int_equal(subform_stale_parents(db, set, &ids, &n), RC_OK);
	assert_int_equal(n, 0);
	free(ids);

	/* A tombstone takes the lines with it, in its transaction. */
	write_record(db, set,
		     "{\"id\":\"1\",\"Modified_Time\":\"2026-01-01T11:00:00+00:00\","
		     "\"Invoiced_Items\":[{\"id\":\"14\",\"Quantity\":1}]}",
		     1767265300);
	assert_value(db, "SELECT count(*) FROM invoices__invoiced_items", "1");
	long applied = 0;
	assert_int_equal(db_begin(db), RC_OK);
	assert_int_equal(merge_tombstones(db, "Invoices", (const int64_t[]){1},
					  (const int64_t[]){1767265400000LL}, 1, "notify", &applied),
			 RC_OK);
	assert_int_equal(db_commit(db), RC_OK);
	assert_int_equal(applied, 1);
	assert_value(db, "SELECT count(*) FROM invoices__invoiced_items", "0");
	assert_value(db, "SELECT count(*) FROM line_sets", "0");
	/* ... and a stale read of the deleted parent brings nothing back. */
	write_record(db, set,
		     "{\"id\":\"1\",\"Modified_Time\":\"2026-01-01T11:00:00+00:00\","
		     "\"Invoiced_Items\":[{\"id\":\"14\",\"Quantity\":1}]}",
		     1767265500);
	assert_value(db, "SELECT count(*) FROM invoices__invoiced_items", "0");
	subform_set_free(set);
}

/* A value that does not cast costs its cell, not the set. */
static void test_bad_cell(void **state)
{
	struct db *db = *state;
	struct subform_set *set = NULL;

	assert_int_equal(subform_load_set(db, "Invoices", &set), RC_OK);
	assert_int_equal(db_exec(db, "INSERT INTO invoices VALUES (2, '2026-01-01T10:00:00Z')", 0,
				 NULL, NULL),
			 RC_OK);
	write_record(db, set,
		     "{\"id\":\"2\",\"Modified_Time\":\"2026-01-01T10:00:00+00:00\","
		     "\"Invoiced_Items\":[{\"id\":\"21\",\"Quantity\":\"lots\"},{\"id\":\"22\","
		     "\"Quantity\":5}]}",
		     1767261600);
	assert_value(db, "SELECT string_agg(id || ':' || coalesce(quantity::text, 'NULL'), ','"
			 " ORDER BY id) FROM invoices__invoiced_items WHERE parent_id = 2",
		     "21:NULL,22:5");
	subform_set_free(set);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_table_name),    cmocka_unit_test(test_types),
		cmocka_unit_test(test_listing_calls), cmocka_unit_test(test_cost_choice),
		cmocka_unit_test(test_prices),        cmocka_unit_test(test_linked_ids),
	};
	const struct CMUnitTest withdb[] = {
		cmocka_unit_test(test_line_sets),
		cmocka_unit_test(test_bad_cell),
	};
	int failed = cmocka_run_group_tests_name("subform", pure, NULL, NULL);
	return failed + cmocka_run_group_tests_name("subform_db", withdb, db_setup, testdb_teardown);
}
