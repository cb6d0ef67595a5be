/*
 * The benchmark's SMTP load generator: SESSIONS concurrent SMTP sessions against 127.0.0.1:PORT, one message
 * each (greeting, EHLO, MAIL, RCPT, DATA, message, QUIT), timed per step. It replaced a Node client that took
 * 0.33-0.49 ms of CPU per message, 10-15 % of the two cores Postfix, clamd and the milter share; this one
 * takes about a quarter of that (a gateway's senders are not on the gateway).
 *
 *   smtp-load PORT SESSIONS WARMUP_MS CELL_MS RATE OUT MESSAGE_FILE...
 *
 * RATE 0: closed loop, each session starts when the one before it on its connection slot ended, until
 * WARMUP_MS + CELL_MS. RATE > 0: session n is due at n / RATE seconds (at most SESSIONS at once); a late start
 * counts in its latency. Message files are dot-stuffed and end with the final ".\r\n"; the first "SEQ" in
 * each is replaced by the session's number. OUT gets one line per session that started after WARMUP_MS and ended
 * before the end: "m <waited> <greeting> <ehlo> <mail> <rcpt> <data> <endOfData>" (ms), then
 * "c <completed> <failures> <cpu ms>" and, after a failure, "f <what the first one was>".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum step { IDLE, GREETING, EHLO, MAIL, RCPT, DATA, BODY, QUIT };
#define PHASES 6 /* greeting, ehlo, mail, rcpt, data, endOfData */
#define SESSION_TIMEOUT_MS 60000.0
#define FAILURE_PAUSE_MS 50.0

/* The text before and after "SEQ" (tail NULL: no "SEQ"). */
struct message { const char *head; size_t head_len; const char *tail; size_t tail_len; };

struct slot {
  int fd;
  enum step step;
  long n;              /* session number */
  double due;          /* IDLE: not before this (a pause after a failure) */
  double t0, lap, waited;
  double phase[PHASES];
  char in[4096];
  size_t in_len;
  char out[256];       /* a command, or the message's sequence number */
  struct iovec iov[3];
  int iov_count;       /* pending output: iov[0..iov_count) */
  int watching_out;    /* EPOLLOUT is in the descriptor's epoll events */
};

static struct message *messages;
static int message_count;
static struct sockaddr_in address;
static int epoll_fd;
static long next_session, completed, failures;
static char first_failure[300];
static FILE *out;
static double start, measure_from, stop_at, rate;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what) {
  perror(what);
  exit(2);
}

static void load_message(const char *path, struct message *m) {
  FILE *f = fopen(path, "rb");
  if (!f) die(path);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  rewind(f);
  char *text = malloc((size_t)size + 1);
  if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) die(path);
  fclose(f);
  text[size] = 0;
  char *seq = strstr(text, "SEQ");
  m->head = text;
  m->head_len = seq ? (size_t)(seq - text) : (size_t)size;
  m->tail = seq ? seq + 3 : NULL;
  m->tail_len = seq ? (size_t)(text + size - (seq + 3)) : 0;
}

/* Ends the slot's session; a failure keeps the slot idle for a moment (the server may be refusing). */
static void finish(struct slot *s, const char *failure) {
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  s->step = IDLE;
  s->iov_count = 0;
  s->due = now_ms();
  if (failure) {
    failures++;
    if (!first_failure[0]) snprintf(first_failure, sizeof first_failure, "%s", failure);
    s->due += FAILURE_PAUSE_MS;
  }
}

static int flush(struct slot *s) {
  while (s->iov_count > 0) {
    ssize_t w = writev(s->fd, s->iov, s->iov_count);
    if (w < 0) {
      if (errno == EAGAIN) break;
      return -1;
    }
    int i = 0;
    while (i < s->iov_count && (size_t)w >= s->iov[i].iov_len) w -= (ssize_t)s->iov[i++].iov_len;
    memmove(s->iov, s->iov + i, sizeof(struct iovec) * (size_t)(s->iov_count - i));
    s->iov_count -= i;
    if (s->iov_count > 0) {
      s->iov[0].iov_base = (char *)s->iov[0].iov_base + w;
      s->iov[0].iov_len -= (size_t)w;
    }
  }
  /* Watch for writability only while output is pending (rarely: a command or a small message fits at once). */
  int want_out = s->iov_count > 0;
  if (want_out != s->watching_out) {
    struct epoll_event ev = { .events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = s };
    if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, s->fd, &ev) < 0) die("epoll_ctl");
    s->watching_out = want_out;
  }
  return 0;
}

static int send_command(struct slot *s, const char *command) {
  int len = snprintf(s->out, sizeof s->out, "%s\r\n", command);
  s->iov[0] = (struct iovec){ s->out, (size_t)len };
  s->iov_count = 1;
  return flush(s);
}

static int send_message(struct slot *s) {
  const struct message *m = &messages[s->n % message_count];
  s->iov[0] = (struct iovec){ (void *)m->head, m->head_len };
  s->iov_count = 1;
  if (m->tail != NULL) {
    int seq_len = snprintf(s->out, sizeof s->out, "%ld", s->n + 1);
    s->iov[1] = (struct iovec){ s->out, (size_t)seq_len };
    s->iov[2] = (struct iovec){ (void *)m->tail, m->tail_len };
    s->iov_count = 3;
  }
  return flush(s);
}

static void start_session(struct slot *s, double t0) {
  s->n = next_session++;
  s->t0 = t0;
  s->lap = now_ms(); /* the steps count from the actual start; a late start is `waited` */
  s->waited = s->lap - t0;
  s->in_len = 0;
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->fd < 0) die("socket");
  if (connect(s->fd, (struct sockaddr *)&address, sizeof address) < 0 && errno != EINPROGRESS) {
    finish(s, "connect failed");
    return;
  }
  s->step = GREETING;
  s->watching_out = 0;
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, s->fd, &ev) < 0) die("epoll_ctl");
}

static void lap(struct slot *s, int phase) {
  double t = now_ms();
  s->phase[phase] = t - s->lap;
  s->lap = t;
}

/* One complete reply (its last line starts at `line`) for the slot's current step. */
static void on_reply(struct slot *s, const char *line) {
  static const int expected[] = { [GREETING] = 220, [EHLO] = 250, [MAIL] = 250, [RCPT] = 250, [DATA] = 354, [BODY] = 250, [QUIT] = 221 };
  static const char *names[] = { [GREETING] = "greeting", [EHLO] = "EHLO", [MAIL] = "MAIL", [RCPT] = "RCPT", [DATA] = "DATA", [BODY] = "end of data", [QUIT] = "QUIT" };
  int code = atoi(line);
  if (code != expected[s->step]) {
    char failure[300];
    const char *eol = strpbrk(line, "\r\n");
    snprintf(failure, sizeof failure, "%s: %.*s", names[s->step], eol ? (int)(eol - line) : 200, line);
    finish(s, failure);
    return;
  }
  int rc = 0;
  switch (s->step) {
    case GREETING: lap(s, 0); s->step = EHLO; rc = send_command(s, "EHLO bench.example.org"); break;
    case EHLO: lap(s, 1); s->step = MAIL; rc = send_command(s, "MAIL FROM:<sender@example.org>"); break;
    case MAIL: lap(s, 2); s->step = RCPT; rc = send_command(s, "RCPT TO:<alice@example.test>"); break;
    case RCPT: lap(s, 3); s->step = DATA; rc = send_command(s, "DATA"); break;
    case DATA: lap(s, 4); s->step = BODY; rc = send_message(s); break;
    case BODY: {
      lap(s, 5);
      completed++;
      double t1 = now_ms();
      if (s->t0 >= measure_from && t1 <= stop_at) {
        fprintf(out, "m %.4f %.4f %.4f %.4f %.4f %.4f %.4f\n", s->waited, s->phase[0], s->phase[1], s->phase[2], s->phase[3], s->phase[4], s->phase[5]);
      }
      s->step = QUIT;
      rc = send_command(s, "QUIT");
      break;
    }
    case QUIT: finish(s, NULL); return;
    default: break;
  }
  if (rc < 0) finish(s, "write failed");
}

static void on_readable(struct slot *s) {
  for (;;) {
    ssize_t r = read(s->fd, s->in + s->in_len, sizeof s->in - 1 - s->in_len);
    if (r < 0 && errno == EAGAIN) return;
    if (r <= 0) {
      if (s->step == QUIT) finish(s, NULL); /* closed after QUIT: done */
      else finish(s, r == 0 ? "connection closed" : "read failed");
      return;
    }
    s->in_len += (size_t)r;
    s->in[s->in_len] = 0;
    /* Complete lines; the reply ends at a line whose 4th character is not '-'. */
    size_t at = 0;
    char *nl;
    while (s->step != IDLE && (nl = memchr(s->in + at, '\n', s->in_len - at)) != NULL) {
      char *line = s->in + at;
      at = (size_t)(nl - s->in) + 1;
      if (nl - line >= 4 && line[3] == '-') continue;
      enum step before = s->step;
      on_reply(s, line);
      if (s->step == IDLE || s->step == before) return;
    }
    if (s->step == IDLE) return;
    memmove(s->in, s->in + at, s->in_len - at);
    s->in_len -= at;
    if (s->in_len >= sizeof s->in - 1) {
      finish(s, "reply line too long");
      return;
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 8) {
    fprintf(stderr, "usage: smtp-load PORT SESSIONS WARMUP_MS CELL_MS RATE OUT MESSAGE_FILE...\n");
    return 2;
  }
  address.sin_family = AF_INET;
  address.sin_port = htons((unsigned short)atoi(argv[1]));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int sessions = atoi(argv[2]);
  start = now_ms();
  measure_from = start + atof(argv[3]);
  stop_at = measure_from + atof(argv[4]);
  rate = atof(argv[5]);
  out = fopen(argv[6], "w");
  if (!out) die(argv[6]);
  message_count = argc - 7;
  messages = calloc((size_t)message_count, sizeof *messages);
  for (int i = 0; i < message_count; i++) load_message(argv[7 + i], &messages[i]);

  epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) die("epoll_create1");
  struct slot *slots = calloc((size_t)sessions, sizeof *slots);
  for (int i = 0; i < sessions; i++) slots[i] = (struct slot){ .fd = -1, .step = IDLE, .due = start };
  struct epoll_event events[64];
  for (;;) {
    double t = now_ms();
    int busy = 0;
    double wake = t + 1000;
    for (int i = 0; i < sessions; i++) {
      struct slot *s = &slots[i];
      if (s->step != IDLE) {
        busy++;
        if (t - s->t0 > SESSION_TIMEOUT_MS) finish(s, "session timed out");
        continue;
      }
      /* Closed loop: start now. Paced: the next session when it is due, or late if no slot was free then. */
      double scheduled = rate > 0 ? start + (double)next_session * 1000.0 / rate : t;
      if (scheduled >= stop_at) continue;
      double at = scheduled > s->due ? scheduled : s->due; /* after a failure, the slot pauses */
      if (at > t) {
        if (at < wake) wake = at;
        continue;
      }
      start_session(s, scheduled);
      busy++;
    }
    if (busy == 0 && (rate > 0 ? start + (double)next_session * 1000.0 / rate : t) >= stop_at) break;
    /* Paced sessions start on time to a few microseconds: a whole-millisecond timeout would start them late. */
    double wait = wake - now_ms();
    if (wait < 0) wait = 0;
    if (wait > 100) wait = 100;
    struct timespec timeout = { .tv_sec = 0, .tv_nsec = (long)(wait * 1e6) };
    int n = epoll_pwait2(epoll_fd, events, 64, &timeout, NULL);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      struct slot *s = events[i].data.ptr;
      if (s->step == IDLE) continue;
      if (events[i].events & EPOLLOUT) {
        if (flush(s) < 0) { finish(s, "write failed"); continue; }
      }
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(s);
    }
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 + ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3;
  fprintf(out, "c %ld %ld %.3f\n", completed, failures, cpu);
  if (first_failure[0]) fprintf(out, "f %s\n", first_failure);
  return fclose(out) == 0 ? 0 : 1;
}
