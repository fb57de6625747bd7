# ivserver: a host-side ivshmem server.  Portable make syntax: works
# with BSD make and GNU make 4.

PROG=		ivserver
OBJS=		ivserver.o json.o layout.o libivshm.o log.o parent.o peerq.o \
		proto.o qemu.o sandbox.o server.o util.o
LIB=		libivshm.a
# The guest half, ivshm_dev.o, is Linux only (sysfs and vfio-pci).
DEVOBJS!=	[ "`uname -s`" = Linux ] && echo ivshm_dev.o || true
LIBOBJS=	libivshm.o ivshm_host.o ${DEVOBJS}
CTL=		ivctl

PREFIX?=	/usr/local
BINDIR?=	${PREFIX}/sbin
MANDIR?=	${PREFIX}/share/man
INCDIR?=	${PREFIX}/include
LIBDIR?=	${PREFIX}/lib
PKGDIR?=	${LIBDIR}/pkgconfig
CTLDIR?=	${PREFIX}/bin
EXDIR?=		${PREFIX}/share/examples/ivserver
# Where systemd keeps units, when this is a system with systemd.
SYSTEMDUNITDIR!= pkg-config --variable=systemdsystemunitdir systemd \
		    2>/dev/null || { [ "`uname -s`" = Linux ] && \
		    echo /lib/systemd/system; } || true
UNITS=		ivserver@.service ivserver-peer@.service

CC?=		cc
AR?=		ar
CFLAGS?=	-O2 -g
WARNFLAGS=	-std=c99 -pedantic -Wall -Wextra -Wstrict-prototypes \
		-Wmissing-prototypes -Wmissing-declarations -Wshadow \
		-Wpointer-arith -Wcast-qual -Wsign-compare -Wformat=2 \
		-Wundef -Wwrite-strings
OSFLAGS!=	[ "`uname -s`" = Linux ] && echo -D_GNU_SOURCE -DLIBBSD_OPENBSD_VIS || true
BSD_CFLAGS!=	pkg-config --cflags libbsd-overlay 2>/dev/null || true
BSD_LIBS!=	pkg-config --libs libbsd-ctor libbsd-overlay 2>/dev/null || true
# ivctl sets no process title: libbsd without its constructor.
CTL_LIBS!=	pkg-config --libs libbsd-overlay 2>/dev/null || true
ALLCFLAGS=	${WARNFLAGS} ${OSFLAGS} ${BSD_CFLAGS} ${CPPFLAGS} ${CFLAGS}

VERSION!=	sed -n 's/^\#define IVSERVER_VERSION.*"\(.*\)"/\1/p' ivserver.h

all: ${PROG} ${LIB} ${CTL} libivshm.pc

${PROG}: ${OBJS}
	${CC} ${CFLAGS} ${LDFLAGS} -o $@ ${OBJS} ${BSD_LIBS}

# libivshm needs only libc: programs link it without libbsd.
${LIB}: ${LIBOBJS}
	rm -f $@
	${AR} rc $@ ${LIBOBJS}
	-ranlib $@

CTLOBJS=	ivctl.o ivctl_peer.o

${CTL}: ${CTLOBJS} ${LIB}
	${CC} ${CFLAGS} ${LDFLAGS} -o $@ ${CTLOBJS} ${LIB} ${CTL_LIBS}

libivshm.pc: libivshm.pc.in Makefile ivserver.h
	sed -e 's|@PREFIX@|${PREFIX}|' -e 's|@INCDIR@|${INCDIR}|' \
	    -e 's|@LIBDIR@|${LIBDIR}|' -e 's|@VERSION@|${VERSION}|' \
	    libivshm.pc.in >$@

.SUFFIXES: .c .o
.c.o:
	${CC} ${ALLCFLAGS} -c $<

${OBJS}: .depcheck ivserver.h ivshm.h log.h
${LIBOBJS}: .depcheck ivshm.h
${CTLOBJS}: .depcheck ivshm.h ivctl.h
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
	mkdir -p ${DESTDIR}${BINDIR} ${DESTDIR}${MANDIR}/man3 \
	    ${DESTDIR}${MANDIR}/man5 ${DESTDIR}${MANDIR}/man8 \
	    ${DESTDIR}${INCDIR} ${DESTDIR}${EXDIR} ${DESTDIR}${LIBDIR} \
	    ${DESTDIR}${PKGDIR} ${DESTDIR}${CTLDIR}
	install -m 755 ${PROG} ${DESTDIR}${BINDIR}/${PROG}
	ln -sf ${PROG} ${DESTDIR}${BINDIR}/ivshmem-server
	install -m 644 ivserver.8 ${DESTDIR}${MANDIR}/man8/ivserver.8
	ln -sf ivserver.8 ${DESTDIR}${MANDIR}/man8/ivshmem-server.8
	install -m 644 ivserver.conf.5 ${DESTDIR}${MANDIR}/man5/ivserver.conf.5
	install -m 644 ivshm.5 ${DESTDIR}${MANDIR}/man5/ivshm.5
	install -m 644 ivshm.h ${DESTDIR}${INCDIR}/ivshm.h
	install -m 644 ${LIB} ${DESTDIR}${LIBDIR}/${LIB}
	install -m 644 libivshm.pc ${DESTDIR}${PKGDIR}/libivshm.pc
	install -m 644 libivshm.3 ${DESTDIR}${MANDIR}/man3/libivshm.3
	install -m 755 ${CTL} ${DESTDIR}${CTLDIR}/${CTL}
	install -m 644 ivctl.8 ${DESTDIR}${MANDIR}/man8/ivctl.8
	install -m 644 conf/*.json ${DESTDIR}${EXDIR}/
	@[ -z "${SYSTEMDUNITDIR}" ] || for u in ${UNITS}; do \
		mkdir -p ${DESTDIR}${SYSTEMDUNITDIR} && \
		echo "install conf/$$u.in -> ${DESTDIR}${SYSTEMDUNITDIR}/$$u" && \
		sed -e 's|@BINDIR@|${BINDIR}|g' conf/$$u.in \
		    >${DESTDIR}${SYSTEMDUNITDIR}/$$u && \
		chmod 644 ${DESTDIR}${SYSTEMDUNITDIR}/$$u || exit 1; \
	done

uninstall:
	rm -f ${DESTDIR}${BINDIR}/${PROG} ${DESTDIR}${BINDIR}/ivshmem-server \
	    ${DESTDIR}${MANDIR}/man8/ivserver.8 \
	    ${DESTDIR}${MANDIR}/man8/ivshmem-server.8 \
	    ${DESTDIR}${MANDIR}/man5/ivserver.conf.5 \
	    ${DESTDIR}${MANDIR}/man5/ivshm.5 \
	    ${DESTDIR}${INCDIR}/ivshm.h ${DESTDIR}${LIBDIR}/${LIB} \
	    ${DESTDIR}${PKGDIR}/libivshm.pc \
	    ${DESTDIR}${MANDIR}/man3/libivshm.3 \
	    ${DESTDIR}${CTLDIR}/${CTL} ${DESTDIR}${MANDIR}/man8/ivctl.8
	rm -rf ${DESTDIR}${EXDIR}
	@[ -z "${SYSTEMDUNITDIR}" ] || for u in ${UNITS}; do \
		rm -f ${DESTDIR}${SYSTEMDUNITDIR}/$$u; done

lint:
	mandoc -Tlint -Wwarning ivserver.8 ivserver.conf.5 ivshm.5 ivctl.8 \
	    libivshm.3

clean:
	rm -f ${PROG} ${OBJS} ${LIB} ${LIBOBJS} ${CTL} ${CTLOBJS} libivshm.pc \
	    layout-default.inc .depcheck
	cd regress && ${MAKE} clean
	cd regress/fuzz && ${MAKE} clean

.PHONY: all check fuzz bench install uninstall lint clean
