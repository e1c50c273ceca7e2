/* reply.c — HTTP in and out for the routes: the request's method and body
 * (bounded), one reply and how it is written, and the one map from an
 * enum rc to an HTTP status (reply_status) that every error reply goes
 * through. docs/errors.md lists the statuses per route. */
#include "compiler.h"
#include "webhook.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int reply_status(enum rc rc)
{
	switch (rc) {
	case RC_OK:
		return 200;
	case RC_BADINPUT:
		return 400;
	case RC_AUTH:
		return 403;
	case RC_NOTFOUND:
		return 404;
	case RC_TOOBIG:
		return 413;
	case RC_DB:
		return 503;
	default:
		return 500;
	}
}

static const char *status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

void reply_init(struct reply *r)
{
	*r = (struct reply){reply_status(RC_INTERNAL), "text/plain", NULL, NULL};
}

/* A JSON error body {"error": code, "message": text}. */
static void reply_error_status(struct reply *r, int status, const char *code,
			       const char *message)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(code));
	json_object_object_add(o, "message", json_object_new_string(message));
	free(r->body);
	r->status = status;
	r->content_type = "application/json";
	r->body = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

void reply_error(struct reply *r, enum rc rc, const char *code, const char *message)
{
	reply_error_status(r, reply_status(rc), code, message);
}

void reply_bad_method(struct reply *r, const char *allow, const char *message)
{
	r->allow = allow;
	reply_error_status(r, 405, "method_not_allowed", message);
}

void reply_ok(struct reply *r, const char *content_type, char *body)
{
	free(r->body);
	r->status = reply_status(RC_OK);
	r->content_type = content_type;
	r->body = body;
}

void reply_ok_json(struct reply *r, const char *json)
{
	reply_ok(r, "application/json", xstrdup(json));
}

void reply_send(FCGX_Request *req, const struct reply *r)
{
	FCGX_FPrintF(req->out, "Status: %d %s\r\n", r->status, status_text(r->status));
	if (r->allow)
		FCGX_FPrintF(req->out, "Allow: %s\r\n", r->allow);
	FCGX_FPrintF(req->out, "Content-Type: %s\r\nCache-Control: no-store\r\n\r\n",
		     r->content_type ? r->content_type : "text/plain");
	if (r->body)
		FCGX_PutStr(r->body, (int)strlen(r->body), req->out);
}

void reply_free(struct reply *r)
{
	free(r->body);
	r->body = NULL;
}

bool request_method_is(FCGX_Request *req, const char *m)
{
	const char *method = FCGX_GetParam("REQUEST_METHOD", req->envp);
	return method && !strcmp(method, m);
}

enum rc request_body(FCGX_Request *req, size_t max, char **body, size_t *len)
{
	const char *cl = FCGX_GetParam("CONTENT_LENGTH", req->envp);
	size_t want = 0, cap, got = 0;
	char *buf;

	*body = NULL;
	*len = 0;
	if (cl && *cl) {
		char *end;
		unsigned long long v = strtoull(cl, &end, 10);
		if (*end || v > max)
			return RC_TOOBIG;
		want = (size_t)v;
	}
	cap = (want ? want : 4096) + 1;
	buf = xmalloc(cap);
	for (;;) {
		if (got + 1 >= cap) {
			if (cap > max + 1) {
				free(buf);
				return RC_TOOBIG;
			}
			cap = cap * 2 > max + 2 ? max + 2 : cap * 2;
			buf = xrealloc(buf, cap);
		}
		int n = FCGX_GetStr(buf + got, (int)(cap - 1 - got), req->in);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got > max) {
			free(buf);
			return RC_TOOBIG;
		}
	}
	if (want && got < want) {
		free(buf);
		return RC_BADINPUT;
	}
	buf[got] = '\0';
	*body = buf;
	*len = got;
	return RC_OK;
}
