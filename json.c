/*
 * json.c: a strict JSON reader for the configuration files, on top of
 * jsmn, which checks nesting but not all of the grammar.  Errors are
 * reported as file:line:column: field: message and counted.
 */

#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>

#include "ivserver.h"
#include "log.h"

#define JSON_FILE_MAX		(256 * 1024)
#define JSON_DEPTH_MAX		16	/* the files need 3: no recursion bomb */
#define TOK(c)			((jsmntok_t *)(c)->tok)

static void	vjson_err(struct json *, size_t, const char *, const char *,
		    va_list) __attribute__((__format__(__printf__, 4, 0)));
static int	json_check(struct json *, int, int);

static void
vjson_err(struct json *c, size_t off, const char *field, const char *fmt,
    va_list ap)
{
	char	 msg[512];
	size_t	 i;
	int	 line = 1, col = 1;

	for (i = 0; i < off && i < c->len; i++) {
		if (c->js[i] == '\n') {
			line++;
			col = 1;
		} else
			col++;
	}
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	log_warnx("%s:%d:%d: %s: %s", c->file, line, col, field, msg);
	c->errors++;
}

/*
 * Report an error at token t (at offset -t - 1 when t < 0) as
 * file:line:column: field: message, and count it.
 */
void
json_err(struct json *c, int t, const char *field, const char *fmt, ...)
{
	va_list	 ap;
	size_t	 off;

	if (t < 0)
		off = (size_t)(-(t + 1));
	else {
		off = (size_t)TOK(c)[t].start;
		if (TOK(c)[t].type == JSMN_STRING && off > 0)
			off--;		/* point at the opening quote */
	}
	va_start(ap, fmt);
	vjson_err(c, off, field, fmt, ap);
	va_end(ap);
}

/* Where a token's text begins and ends, quotes included. */
static size_t
span_start(const jsmntok_t *t)
{
	return t->type == JSMN_STRING ? (size_t)t->start - 1 : (size_t)t->start;
}

static size_t
span_end(const jsmntok_t *t)
{
	return t->type == JSMN_STRING ? (size_t)t->end + 1 : (size_t)t->end;
}

/*
 * True if the text between a and b is white space around exactly the
 * separator sep (or only white space when sep is 0).
 */
static int
gap_ok(const char *js, size_t a, size_t b, char sep)
{
	int	 seen = 0;

	for (; a < b; a++) {
		if (sep != 0 && js[a] == sep && !seen)
			seen = 1;
		else if (!isspace((unsigned char)js[a]))
			return 0;
	}
	return sep == 0 || seen;
}

static int
valid_number(const char *s, size_t n)
{
	size_t	 i = 0;

	if (i < n && s[i] == '-')
		i++;
	if (i < n && s[i] == '0')
		i++;
	else if (i < n && isdigit((unsigned char)s[i]))
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
	else
		return 0;
	if (i < n && s[i] == '.') {
		if (++i >= n || !isdigit((unsigned char)s[i]))
			return 0;
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || !isdigit((unsigned char)s[i]))
			return 0;
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
	}
	return i == n;
}

/*
 * jsmn, even in strict mode, accepts missing or extra commas and any
 * primitive that starts like a literal.  Check the grammar it skips:
 * separators between tokens and the spelling of every primitive.
 * Returns the index after the subtree at t, or -1.  The depth is
 * bounded here, so json_skip's recursion is bounded too.
 */
static int
json_check(struct json *c, int t, int depth)
{
	jsmntok_t	*p = &TOK(c)[t];
	const char	*s = c->js + p->start;
	size_t		 n = p->end - p->start, prev;
	int		 i, k, key;

	if (p->type == JSMN_PRIMITIVE) {
		if ((n == 4 && memcmp(s, "true", 4) == 0) ||
		    (n == 5 && memcmp(s, "false", 5) == 0) ||
		    (n == 4 && memcmp(s, "null", 4) == 0) ||
		    valid_number(s, n))
			return t + 1;
		json_err(c, t, "syntax", "invalid literal \"%.*s\"", (int)n, s);
		return -1;
	}
	if (p->type == JSMN_STRING)
		return t + 1;
	if (depth >= JSON_DEPTH_MAX) {
		json_err(c, t, "syntax", "nested deeper than %d levels",
		    JSON_DEPTH_MAX);
		return -1;
	}
	prev = p->start + 1;
	i = t + 1;
	for (k = 0; k < p->size; k++) {
		key = p->type == JSMN_OBJECT;
		if (key && TOK(c)[i].type != JSMN_STRING) {
			json_err(c, i, "syntax", "object key is not a string");
			return -1;
		}
		if (!gap_ok(c->js, prev, span_start(&TOK(c)[i]),
		    k == 0 ? 0 : ',')) {
			json_err(c, i, "syntax", "expected one ',' before this");
			return -1;
		}
		if (key) {
			/* jsmn lets a key stand without its value: {"a"}. */
			if (TOK(c)[i].size != 1 || i + 1 >= c->ntok) {
				json_err(c, i, "syntax", "a key without a "
				    "value");
				return -1;
			}
			prev = span_end(&TOK(c)[i]);
			i++;
			if (!gap_ok(c->js, prev, span_start(&TOK(c)[i]), ':')) {
				json_err(c, i, "syntax", "expected ':' before this");
				return -1;
			}
		}
		prev = span_end(&TOK(c)[i]);
		if ((i = json_check(c, i, depth + 1)) == -1)
			return -1;
	}
	if (!gap_ok(c->js, prev, p->end - 1, 0)) {
		json_err(c, t, "syntax", "stray ',' at the end of this %s",
		    p->type == JSMN_OBJECT ? "object" : "array");
		return -1;
	}
	return i;
}

/* Index of the token after the subtree at t (a key holds its value). */
int
json_skip(const struct json *c, int t)
{
	int	 k, n = TOK(c)[t].size;

	for (t++, k = 0; k < n; k++)
		t = json_skip(c, t);
	return t;
}

int
json_eq(const struct json *c, int t, const char *s)
{
	size_t	 n = TOK(c)[t].end - TOK(c)[t].start;

	return TOK(c)[t].type == JSMN_STRING && strlen(s) == n &&
	    memcmp(c->js + TOK(c)[t].start, s, n) == 0;
}

/* A size field: a JSON integer or a string such as "16M". */
int
json_size(struct json *c, int t, const char *field, uint64_t *v)
{
	char		 buf[32];
	const char	*errstr;
	size_t		 n = TOK(c)[t].end - TOK(c)[t].start;

	if ((TOK(c)[t].type != JSMN_PRIMITIVE &&
	    TOK(c)[t].type != JSMN_STRING) || n >= sizeof(buf)) {
		json_err(c, t, field, "must be a number or a string like \"4M\"");
		return -1;
	}
	memcpy(buf, c->js + TOK(c)[t].start, n);
	buf[n] = '\0';
	if (TOK(c)[t].type == JSMN_PRIMITIVE && strspn(buf, "0123456789") != n) {
		json_err(c, t, field, "%s is not a whole number of bytes", buf);
		return -1;
	}
	*v = parse_size(buf, &errstr);
	if (errstr != NULL) {
		json_err(c, t, field, "\"%s\" %s", buf, errstr);
		return -1;
	}
	if (*v == 0) {
		json_err(c, t, field, "must be greater than 0");
		return -1;
	}
	return 0;
}

/*
 * Tokenize and check a document held in memory; name is used in
 * messages.  The top level must be an object.  Returns -1 on an error,
 * which has been reported.
 */
int
json_parse(struct json *c, const char *name, const char *js, size_t len)
{
	jsmn_parser	 p;
	jsmntok_t	*tok = NULL;
	int		 r;

	memset(c, 0, sizeof(*c));
	c->file = name;
	c->js = js;
	c->len = len;
	/* Count the tokens, then parse: only the second pass checks nesting. */
	jsmn_init(&p);
	if ((r = jsmn_parse(&p, js, len, NULL, 0)) > 0) {
		if ((tok = calloc(r, sizeof(*tok))) == NULL)
			fatal("json");
		c->tok = tok;
		c->ntok = r;
		jsmn_init(&p);
		r = jsmn_parse(&p, js, len, tok, r);
		c->ntok = r > 0 ? r : 0;
	}
	if (r <= 0) {
		if (r == 0)
			log_warnx("%s: syntax: empty file", name);
		else
			json_err(c, -(int)p.pos - 1, "syntax", "%s",
			    r == JSMN_ERROR_PART ? "unexpected end of file" :
			    "invalid JSON");
		json_free(c);
		return -1;
	}
	if (tok[0].type != JSMN_OBJECT)
		json_err(c, 0, "syntax", "the file must hold a JSON object");
	else if (!gap_ok(js, tok[0].end, len, 0))
		json_err(c, -tok[0].end - 1, "syntax",
		    "text after the end of the object");
	else
		(void)json_check(c, 0, 0);
	if (c->errors) {
		json_free(c);
		return -1;
	}
	return 0;
}

/* Read a file of at most JSON_FILE_MAX bytes and parse it. */
int
json_load(struct json *c, const char *file)
{
	char		*buf;
	ssize_t		 n;
	size_t		 len = 0;
	int		 fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("%s", file);
		return -1;
	}
	if ((buf = malloc(JSON_FILE_MAX + 1)) == NULL)
		fatal("%s", file);
	while ((n = read(fd, buf + len, JSON_FILE_MAX + 1 - len)) > 0)
		if ((len += n) > JSON_FILE_MAX)
			break;
	close(fd);
	if (n == -1 || len > JSON_FILE_MAX) {
		if (n == -1)
			log_warn("%s", file);
		else
			log_warnx("%s: larger than %d bytes", file,
			    JSON_FILE_MAX);
		free(buf);
		return -1;
	}
	if (json_parse(c, file, buf, len) == -1) {
		free(buf);
		return -1;
	}
	c->buf = buf;
	return 0;
}

void
json_free(struct json *c)
{
	free(c->tok);
	free(c->buf);
	c->tok = NULL;
	c->buf = NULL;
	c->ntok = 0;
}

int
json_type(const struct json *c, int t)
{
	switch (TOK(c)[t].type) {
	case JSMN_OBJECT:
		return JSON_OBJECT;
	case JSMN_ARRAY:
		return JSON_ARRAY;
	case JSMN_STRING:
		return JSON_STRING;
	default:
		return JSON_PRIMITIVE;
	}
}

/* Members of an object or elements of an array. */
int
json_kids(const struct json *c, int t)
{
	return TOK(c)[t].size;
}

/* The raw text of a token, without quotes, and its length. */
const char *
json_text(const struct json *c, int t, size_t *len)
{
	*len = TOK(c)[t].end - TOK(c)[t].start;
	return c->js + TOK(c)[t].start;
}

/*
 * A string value, unescaped, in a new buffer.  \u escapes are refused:
 * nothing in these files needs them.
 */
int
json_string(struct json *c, int t, const char *field, char **out)
{
	const char	*s;
	char		*d;
	size_t		 n, i, k = 0;

	if (json_type(c, t) != JSON_STRING) {
		json_err(c, t, field, "must be a string");
		return -1;
	}
	s = json_text(c, t, &n);
	if ((d = malloc(n + 1)) == NULL)
		fatal("%s", field);
	for (i = 0; i < n; i++) {
		if (s[i] != '\\') {
			d[k++] = s[i];
			continue;
		}
		switch (s[++i]) {
		case 'n':
			d[k++] = '\n';
			break;
		case 't':
			d[k++] = '\t';
			break;
		case '"': case '\\': case '/':
			d[k++] = s[i];
			break;
		default:
			json_err(c, t, field, "unsupported escape \\%c", s[i]);
			free(d);
			return -1;
		}
	}
	d[k] = '\0';
	*out = d;
	return 0;
}

/* A whole number in [min, max]. */
int
json_number(struct json *c, int t, const char *field, long long min,
    long long max, long long *v)
{
	char		 buf[32];
	const char	*s, *errstr;
	size_t		 n;

	s = json_text(c, t, &n);
	if (json_type(c, t) != JSON_PRIMITIVE || n >= sizeof(buf) ||
	    strspn(s, "0123456789") != n) {
		json_err(c, t, field, "must be a whole number");
		return -1;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	*v = strtonum(buf, min, max, &errstr);
	if (errstr != NULL) {
		json_err(c, t, field, "%s is %s (%lld to %lld)", buf, errstr,
		    min, max);
		return -1;
	}
	return 0;
}

/*
 * Walk the members of the object at token obj, whose path is path (""
 * at the top).  fields names the members it may have, NULL-terminated;
 * "comment" may stand anywhere, as often as wanted, and is skipped.
 */
void
json_members(struct json_members *m, struct json *c, int obj,
    const char *path, const char *const *fields)
{
	memset(m, 0, sizeof(*m));
	m->c = c;
	m->obj = obj;
	m->path = path;
	m->fields = fields;
	m->next = obj + 1;
	m->key = m->val = -1;
}

/*
 * The next member that names one of the fields: its index in fields,
 * with its key and value tokens and its path (m->field) set, or -1 when
 * there is none left (m->next is then the token after the object).
 * Unknown and repeated members are reported here, and skipped.
 */
int
json_member(struct json_members *m)
{
	struct json	*c = m->c;
	const char	*s;
	size_t		 n;
	int		 i;

	while (m->k < json_kids(c, m->obj)) {
		m->k++;
		m->key = m->next;
		m->val = m->key + 1;
		m->next = json_skip(c, m->val);
		s = json_text(c, m->key, &n);
		(void)snprintf(m->field, sizeof(m->field), "%s%s%.*s",
		    m->path, m->path[0] != '\0' ? "." : "", (int)n, s);
		if (json_eq(c, m->key, "comment"))
			continue;
		for (i = 0; m->fields[i] != NULL; i++)
			if (json_eq(c, m->key, m->fields[i]))
				break;
		if (m->fields[i] == NULL)
			json_err(c, m->key, m->field, "unknown field");
		else if (m->seen & (1U << i))
			json_err(c, m->key, m->field, "given twice");
		else {
			m->seen |= 1U << i;
			return i;
		}
	}
	return -1;
}

/* After the walk: report field i if it was not given; 0 if it was. */
int
json_require(struct json_members *m, int i)
{
	char	 field[sizeof(m->field)];

	if (m->seen & (1U << i))
		return 0;
	(void)snprintf(field, sizeof(field), "%s%s%s", m->path,
	    m->path[0] != '\0' ? "." : "", m->fields[i]);
	json_err(m->c, m->obj, field, "missing");
	return -1;
}
