# ivserver: a host-side ivshmem server.  Portable make syntax: works
# with BSD make and GNU make 4.

PROG=		ivserver
OBJS=		ivserver.o json.o layout.o log.o peerq.o proto.o qemu.o \
		sandbox.o server.o util.o

PREFIX?=	/usr/local
BINDIR?=	${PREFIX}/sbin
MANDIR?=	${PREFIX}/share/man
INCDIR?=	${PREFIX}/include
EXDIR?=		${PREFIX}/share/examples/ivserver

CC?=		cc
CFLAGS?=	-O2 -g
WARNFLAGS=	-std=c99 -pedantic -Wall -Wextra -Wstrict-prototypes \
		-Wmissing-prototypes -Wmissing-declarations -Wshadow \
		-Wpointer-arith -Wcast-qual -Wsign-compare -Wformat=2 \
		-Wundef -Wwrite-strings
OSFLAGS!=	[ "`uname -s`" = Linux ] && echo -D_GNU_SOURCE -DLIBBSD_OPENBSD_VIS || true
BSD_CFLAGS!=	pkg-config --cflags libbsd-overlay 2>/dev/null || true
BSD_LIBS!=	pkg-config --libs libbsd-ctor libbsd-overlay 2>/dev/null || true
ALLCFLAGS=	${WARNFLAGS} ${OSFLAGS} ${BSD_CFLAGS} ${CPPFLAGS} ${CFLAGS}

all: ${PROG}

${PROG}: ${OBJS}
	${CC} ${CFLAGS} ${LDFLAGS} -o $@ ${OBJS} ${BSD_LIBS}

.SUFFIXES: .c .o
.c.o:
	${CC} ${ALLCFLAGS} -c $<

${OBJS}: .depcheck ivserver.h ivshm.h log.h
ivserver.o: layout-default.inc

# Say which Debian package is missing rather than fail in the compiler.
.depcheck: Makefile
	@pkg-config --exists libbsd-overlay || { echo "ivserver needs" \
	    "libbsd: apt-get install libbsd-dev pkg-config" >&2; exit 1; }
	@echo '#include <jsmn.h>' | ${CC} -E -x c - >/dev/null 2>&1 || { \
	    echo "ivserver needs jsmn.h: apt-get install libjsmn-dev" >&2; \
	    exit 1; }
	@touch $@

# The built-in layout is conf/layout.json.
layout-default.inc: conf/layout.json
	od -An -v -tx1 conf/layout.json | \
	    sed -e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g' > $@

check: all
	cd regress && ${MAKE} check

fuzz:
	cd regress/fuzz && ${MAKE} run

bench: all
	cd regress && ${MAKE} bench

install: all
	mkdir -p ${DESTDIR}${BINDIR} ${DESTDIR}${MANDIR}/man5 \
	    ${DESTDIR}${MANDIR}/man8 ${DESTDIR}${INCDIR} ${DESTDIR}${EXDIR}
	install -m 755 ${PROG} ${DESTDIR}${BINDIR}/${PROG}
	ln -sf ${PROG} ${DESTDIR}${BINDIR}/ivshmem-server
	install -m 644 ivserver.8 ${DESTDIR}${MANDIR}/man8/ivserver.8
	ln -sf ivserver.8 ${DESTDIR}${MANDIR}/man8/ivshmem-server.8
	install -m 644 ivserver.conf.5 ${DESTDIR}${MANDIR}/man5/ivserver.conf.5
	install -m 644 ivshm.5 ${DESTDIR}${MANDIR}/man5/ivshm.5
	install -m 644 ivshm.h ${DESTDIR}${INCDIR}/ivshm.h
	install -m 644 conf/*.json ${DESTDIR}${EXDIR}/

uninstall:
	rm -f ${DESTDIR}${BINDIR}/${PROG} ${DESTDIR}${BINDIR}/ivshmem-server \
	    ${DESTDIR}${MANDIR}/man8/ivserver.8 \
	    ${DESTDIR}${MANDIR}/man8/ivshmem-server.8 \
	    ${DESTDIR}${MANDIR}/man5/ivserver.conf.5 \
	    ${DESTDIR}${MANDIR}/man5/ivshm.5 \
	    ${DESTDIR}${INCDIR}/ivshm.h
	rm -rf ${DESTDIR}${EXDIR}

lint:
	mandoc -Tlint -Wwarning ivserver.8 ivserver.conf.5 ivshm.5

clean:
	rm -f ${PROG} ${OBJS} layout-default.inc .depcheck
	cd regress && ${MAKE} clean
	cd regress/fuzz && ${MAKE} clean

.PHONY: all check fuzz bench install uninstall lint clean
