/*
 * Reference milter for the protocol-throughput benchmark: the libmilter baseline.
 *
 * Every stage callback (connect, helo, envfrom, envrcpt, data, header, eoh, body, eom, abort, close) is
 * registered and answers SMFIS_CONTINUE; at end of message one header, "X-Bench: c", is added with
 * smfi_addheader. Nothing is tuned: libmilter's defaults (one thread per connection, default socket
 * options) are what is being measured.
 *
 * Build:  gcc -O2 -Wall -o reference-milter reference-milter.c -lmilter -lpthread
 * Run:    ./reference-milter -p inet:PORT@127.0.0.1 [-N]
 *
 * Once the listening socket is open, "ready <socket spec>" is printed on stdout.
 *
 * -N (diagnostic only, off by default): set TCP_NODELAY on every accepted connection, by interposing
 * accept(2), which libmilter calls through the dynamic linker. It exists so the benchmark can show how
 * much of libmilter's time is the Nagle / delayed-ACK stall on its two-packet end-of-message reply;
 * it is not part of the baseline.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

static int set_nodelay = 0;

/* Interposed accept(2): only does something with -N. */
int accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	static int (*real_accept)(int, struct sockaddr *, socklen_t *) = NULL;
	int s;

	if (real_accept == NULL)
		real_accept = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
	s = real_accept(fd, addr, addrlen);
	if (s >= 0 && set_nodelay) {
		int one = 1;
		(void)setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	return s;
}

static sfsistat bench_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	(void)ctx; (void)hostname; (void)hostaddr;
	return SMFIS_CONTINUE;
}

static sfsistat bench_helo(SMFICTX *ctx, char *helohost)
{
	(void)ctx; (void)helohost;
	return SMFIS_CONTINUE;
}

static sfsistat bench_envfrom(SMFICTX *ctx, char **argv)
{
	(void)ctx; (void)argv;
	return SMFIS_CONTINUE;
}

static sfsistat bench_envrcpt(SMFICTX *ctx, char **argv)
{
	(void)ctx; (void)argv;
	return SMFIS_CONTINUE;
}

static sfsistat bench_data(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat bench_header(SMFICTX *ctx, char *name, char *value)
{
	(void)ctx; (void)name; (void)value;
	return SMFIS_CONTINUE;
}

static sfsistat bench_eoh(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat bench_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	(void)ctx; (void)chunk; (void)len;
	return SMFIS_CONTINUE;
}

static sfsistat bench_eom(SMFICTX *ctx)
{
	if (smfi_addheader(ctx, "X-Bench", "c") != MI_SUCCESS)
		return SMFIS_TEMPFAIL;
	return SMFIS_CONTINUE;
}

static sfsistat bench_abort(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat bench_close(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s -p inet:PORT@127.0.0.1 [-N]\n", prog);
	exit(64);
}

int main(int argc, char **argv)
{
	struct smfiDesc desc;
	char *conn = NULL;
	int c;

	while ((c = getopt(argc, argv, "p:N")) != -1) {
		switch (c) {
		case 'p':
			conn = optarg;
			break;
		case 'N':
			set_nodelay = 1;
			break;
		default:
			usage(argv[0]);
		}
	}
	if (conn == NULL || optind != argc)
		usage(argv[0]);

	memset(&desc, 0, sizeof desc);
	desc.xxfi_name = "bench-reference";
	desc.xxfi_version = SMFI_VERSION;
	desc.xxfi_flags = SMFIF_ADDHDRS;
	desc.xxfi_connect = bench_connect;
	desc.xxfi_helo = bench_helo;
	desc.xxfi_envfrom = bench_envfrom;
	desc.xxfi_envrcpt = bench_envrcpt;
	desc.xxfi_header = bench_header;
	desc.xxfi_eoh = bench_eoh;
	desc.xxfi_body = bench_body;
	desc.xxfi_eom = bench_eom;
	desc.xxfi_abort = bench_abort;
	desc.xxfi_close = bench_close;
	desc.xxfi_unknown = NULL;
	desc.xxfi_data = bench_data;
	desc.xxfi_negotiate = NULL;

	if (smfi_setconn(conn) != MI_SUCCESS) {
		fprintf(stderr, "smfi_setconn(%s) failed\n", conn);
		return 1;
	}
	if (smfi_register(desc) != MI_SUCCESS) {
		fprintf(stderr, "smfi_register failed\n");
		return 1;
	}
	if (smfi_opensocket(1) != MI_SUCCESS) {
		fprintf(stderr, "smfi_opensocket(%s) failed\n", conn);
		return 1;
	}
	printf("ready %s%s\n", conn, set_nodelay ? " nodelay" : "");
	fflush(stdout);
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
