/*
 * qemu.c: QEMU's command line from its JSON file; launch, supervise
 * and stop it.  This runs in the privileged parent, never sandboxed:
 * QEMU would inherit the filter.
 */

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ivserver.h"
#include "log.h"

#define BACKOFF_MAX		60	/* seconds between respawns */
#define STABLE_RUN		(60 * 1000)	/* ms that reset the backoff */
#define IV_CHARDEV_ID		"ivserver"

static void	qemu_argv(struct qemu *, const char *, unsigned int);

static int
qemu_args(struct json *c, int t, const char *field, struct qemu *q)
{
	char	 elem[80];
	int	 i, n;

	if (json_type(c, t) != JSON_ARRAY) {
		json_err(c, t, field, "must be an array of strings");
		return -1;
	}
	n = json_kids(c, t);
	if ((q->args = calloc(n + 1, sizeof(char *))) == NULL)
		fatal("%s", field);
	for (i = 0, t++; i < n; i++, t = json_skip(c, t)) {
		snprintf(elem, sizeof(elem), "%s[%d]", field, i);
		if (json_string(c, t, elem, &q->args[q->nargs]) == 0)
			q->nargs++;
	}
	return 0;
}

static int
respawn_policy(struct json *c, int t, const char *field, struct qemu *q)
{
	if (json_eq(c, t, "no"))
		q->respawn = RESPAWN_NO;
	else if (json_eq(c, t, "on-failure"))
		q->respawn = RESPAWN_FAILURE;
	else if (json_eq(c, t, "always"))
		q->respawn = RESPAWN_ALWAYS;
	else {
		json_err(c, t, field, "must be \"no\", \"on-failure\" or "
		    "\"always\"");
		return -1;
	}
	return 0;
}

/*
 * The ivshmem device and its chardev are ivserver's: they must match
 * the layout.  -daemonize would hide QEMU from its supervisor.
 */
static int
forbidden_arg(const char *a)
{
	return strncmp(a, "ivshmem", 7) == 0 ||
	    strstr(a, "id=" IV_CHARDEV_ID) != NULL ||
	    strcmp(a, "-daemonize") == 0;
}

/* A PCI address: slot[.function], hexadecimal; nothing to inject. */
static int
valid_pciaddr(const char *a)
{
	return a[0] != '\0' && strlen(a) <= 8 &&
	    strspn(a, "0123456789abcdefABCDEFx.") == strlen(a);
}

static int
pci_address(struct json *c, int t, const char *field, struct qemu *q)
{
	if (json_string(c, t, field, &q->pciaddr) == -1)
		return -1;
	if (!valid_pciaddr(q->pciaddr)) {
		json_err(c, t, field, "\"%s\" is not a PCI slot[.function]",
		    q->pciaddr);
		return -1;
	}
	return 0;
}

/* A whole number of [min, max] into an unsigned int. */
static void
number(struct json *c, int t, const char *field, long long min,
    long long max, unsigned int *v)
{
	long long	 n;

	if (json_number(c, t, field, min, max, &n) == 0)
		*v = (unsigned int)n;
}

static const char *const fields[] = { "binary", "args", "pci_address",
    "respawn", "respawn_limit", "respawn_delay", "stop_timeout", NULL };
enum { Q_BINARY, Q_ARGS, Q_PCIADDR, Q_RESPAWN, Q_LIMIT, Q_DELAY, Q_STOP };

static int
qemu_fields(struct json *c, struct qemu *q)
{
	struct json_members	 m;
	size_t			 i;

	json_members(&m, c, 0, "", fields);
	for (;;) {
		switch (json_member(&m)) {
		case Q_BINARY:
			(void)json_string(c, m.val, m.field, &q->binary);
			continue;
		case Q_ARGS:
			(void)qemu_args(c, m.val, m.field, q);
			continue;
		case Q_PCIADDR:
			(void)pci_address(c, m.val, m.field, q);
			continue;
		case Q_RESPAWN:
			(void)respawn_policy(c, m.val, m.field, q);
			continue;
		case Q_LIMIT:
			number(c, m.val, m.field, 0, 1000000,
			    &q->respawn_limit);
			continue;
		case Q_DELAY:
			number(c, m.val, m.field, 0, BACKOFF_MAX,
			    &q->respawn_delay);
			continue;
		case Q_STOP:
			number(c, m.val, m.field, 1, 3600, &q->stop_timeout);
			continue;
		}
		break;
	}
	(void)json_require(&m, Q_BINARY);
	for (i = 0; i < q->nargs; i++)
		if (forbidden_arg(q->args[i]))
			json_err(c, 0, "args", "\"%s\": ivserver adds the "
			    "ivshmem device and its chardev itself, and "
			    "supervises QEMU in the foreground", q->args[i]);
	return c->errors ? -1 : 0;
}

/*
 * Read the QEMU launch file and build the command line, with the
 * ivshmem device on the QEMU socket and one vector per region.
 */
int
qemu_load(struct qemu *q, const char *file, const char *sock,
    unsigned int nvec)
{
	struct json	 c;
	int		 rv;

	memset(q, 0, sizeof(*q));
	q->pid = -1;
	q->respawn_delay = 1;
	q->stop_timeout = 10;
	q->file = file;
	if (json_load(&c, file) == -1)
		return -1;
	rv = qemu_fields(&c, q);
	json_free(&c);
	if (rv == 0)
		qemu_argv(q, sock, nvec);
	return rv;
}

static char *
xprintf(const char *fmt, ...)
    __attribute__((__format__(__printf__, 1, 2)));

static char *
xprintf(const char *fmt, ...)
{
	va_list	 ap;
	char	*s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		fatal("QEMU command line");
	va_end(ap);
	return s;
}

/*
 * A value in a QEMU option list: a comma would end it and let the rest
 * pass for more options, so each is doubled, as QEMU reads ",," for one.
 */
static char *
optescape(const char *s)
{
	char	*e, *d;

	if ((e = reallocarray(NULL, strlen(s) + 1, 2)) == NULL)
		fatal("QEMU command line");
	for (d = e; *s != '\0'; s++) {
		if (*s == ',')
			*d++ = ',';
		*d++ = *s;
	}
	*d = '\0';
	return e;
}

static void
qemu_argv(struct qemu *q, const char *sock, unsigned int nvec)
{
	static char	 chardev[] = "-chardev", device[] = "-device";
	char		*esc;
	size_t		 i, n = 0;

	if ((q->argv = calloc(q->nargs + 6, sizeof(char *))) == NULL)
		fatal("QEMU command line");
	q->chardev = xprintf("socket,path=%s,id=%s", esc = optescape(sock),
	    IV_CHARDEV_ID);
	free(esc);
	if (q->pciaddr != NULL)
		q->device = xprintf("ivshmem-doorbell,chardev=%s,vectors=%u,"
		    "addr=%s", IV_CHARDEV_ID, nvec, q->pciaddr);
	else
		q->device = xprintf("ivshmem-doorbell,chardev=%s,vectors=%u",
		    IV_CHARDEV_ID, nvec);
	q->argv[n++] = q->binary;
	for (i = 0; i < q->nargs; i++)
		q->argv[n++] = q->args[i];
	q->argv[n++] = chardev;
	q->argv[n++] = q->chardev;
	q->argv[n++] = device;
	q->argv[n++] = q->device;
	q->argv[n] = NULL;
	q->nargv = n;
}

/* The command line as a shell would take it, for -n. */
void
qemu_print(const struct qemu *q)
{
	const char	*a, *p;
	size_t		 i;

	for (i = 0; i < q->nargv; i++) {
		a = q->argv[i];
		if (i > 0)
			putchar(' ');
		if (a[0] != '\0' && strspn(a, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=,./:+@%") ==
		    strlen(a)) {
			fputs(a, stdout);
			continue;
		}
		putchar('\'');
		for (p = a; *p != '\0'; p++) {
			if (*p == '\'')
				fputs("'\\''", stdout);
			else
				putchar(*p);
		}
		putchar('\'');
	}
	putchar('\n');
}

void
qemu_free(struct qemu *q)
{
	size_t	 i;

	for (i = 0; i < q->nargs; i++)
		free(q->args[i]);
	free(q->args);
	free(q->chardev);
	free(q->device);
	free(q->argv);
	free(q->binary);
	free(q->pciaddr);
	memset(q, 0, sizeof(*q));
	q->pid = -1;
}

/*
 * Start QEMU.  Detached, ivserver puts it in a process group of its
 * own so that signals meant for ivserver reach QEMU only through its
 * orderly stop; in the foreground QEMU keeps the terminal.
 */
pid_t
qemu_start(struct qemu *q)
{
	sigset_t	 set;
	pid_t		 pid;
	int		 sig;

	switch ((pid = fork())) {
	case -1:
		log_warn("fork for %s", q->binary);
		return -1;
	case 0:
		for (sig = 1; sig < NSIG; sig++)
			(void)signal(sig, SIG_DFL);
		sigemptyset(&set);
		sigprocmask(SIG_SETMASK, &set, NULL);
		if (q->ownpgrp)
			(void)setpgid(0, 0);
		execv(q->binary, q->argv);
		log_warn("exec %s", q->binary);
		_exit(127);
	}
	q->pid = pid;
	q->started = now_ms();
	q->restart_at = 0;
	log_info("started %s, pid %ld", q->binary, (long)pid);
	return pid;
}

/*
 * QEMU is gone: apply the respawn policy, waiting longer after each
 * quick failure, and give up after the limit.
 */
void
qemu_exited(struct qemu *q, int status)
{
	int	 failed;

	log_info("QEMU pid %ld %s", (long)q->pid, exit_status(status));
	failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	q->pid = -1;
	if (q->stopping || q->respawn == RESPAWN_NO ||
	    (q->respawn == RESPAWN_FAILURE && !failed))
		return;
	if (q->respawn_limit != 0 && q->respawns >= q->respawn_limit) {
		log_warnx("QEMU respawned %u times: giving up",
		    q->respawns);
		return;
	}
	if (now_ms() - q->started >= STABLE_RUN || q->respawns == 0)
		q->backoff = q->respawn_delay;
	else if ((q->backoff = q->backoff ? q->backoff * 2 : 1) > BACKOFF_MAX)
		q->backoff = BACKOFF_MAX;
	q->respawns++;
	q->restart_at = now_ms() + (int64_t)q->backoff * 1000;
	log_info("restarting QEMU in %u s", q->backoff);
}

/* Milliseconds until QEMU is due to start, or -1. */
int
qemu_timeout(const struct qemu *q)
{
	int64_t	 d;

	if (q->binary == NULL || q->pid != -1 || q->restart_at == 0)
		return -1;
	d = q->restart_at - now_ms();
	return d < 0 ? 0 : (int)(d > INT32_MAX ? INT32_MAX : d);
}

/* Start QEMU if it is due; returns the new pid or -1. */
pid_t
qemu_due(struct qemu *q)
{
	if (qemu_timeout(q) != 0)
		return -1;
	return qemu_start(q);
}

/* SIGTERM, then SIGKILL after the stop timeout; reaps QEMU. */
void
qemu_stop(struct qemu *q)
{
	int	 status;

	q->stopping = 1;
	q->restart_at = 0;
	if (q->pid == -1)
		return;
	log_info("stopping QEMU pid %ld", (long)q->pid);
	status = child_stop(q->pid, "QEMU", q->stop_timeout * 1000);
	if (status != -1)
		log_info("QEMU pid %ld %s", (long)q->pid, exit_status(status));
	q->pid = -1;
}
