/* Credentials that rotate: --password-file read and --password-command run before each attempt. */
#include "pgentry/db/password.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgentry/common/errbuf.h"
#include "pgentry/supervise/supervisor.h"

extern char **environ;

struct pge_password {
    struct ev_loop *loop;
    pge_password_cb cb;
    void *arg;
    pid_t pid; /* 0 once it has exited */
    int status;
    int fd; /* the pipe's read end, -1 at EOF */
    ev_io io;
    ev_child child;
    size_t len;
    int too_long;
    char buf[PGE_PASSWORD_MAX + 2];
};

/* Drop one trailing "\n" or "\r\n", as `echo` and secret editors add. */
static void chomp(char *s, size_t *len)
{
    if (*len > 0 && s[*len - 1] == '\n')
        (*len)--;
    if (*len > 0 && s[*len - 1] == '\r')
        (*len)--;
    s[*len] = '\0';
}

int pge_password_read_file(const char *path, char *out, size_t size, char *err, size_t errsize)
{
    struct stat st;
    size_t len = 0;
    int rc = -1;
    /* O_NONBLOCK: a FIFO in its place must not stall the loop in open(); a regular file on
     * a local or tmpfs volume (Docker and Kubernetes secrets) is read in microseconds. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        pge_errbuf_set(err, errsize,
                       errno == ENOENT ? "password file %s does not exist yet"
                                       : "password file %s cannot be opened: %s",
                       path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        pge_errbuf_set(err, errsize, "password file %s is not a regular file", path);
        goto done;
    }
    while (len < size - 1) {
        ssize_t n = read(fd, out + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            pge_errbuf_set(err, errsize, "password file %s cannot be read: %s", path,
                           strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > PGE_PASSWORD_MAX || len == size - 1) {
        pge_errbuf_set(err, errsize, "password file %s is longer than %d bytes", path,
                       PGE_PASSWORD_MAX);
        goto done;
    }
    chomp(out, &len);
    if (len == 0) {
        pge_errbuf_set(err, errsize, "password file %s is empty", path);
        goto done;
    }
    rc = 0;
done:
    if (rc < 0)
        explicit_bzero(out, size);
    close(fd);
    return rc;
}

static void close_pipe(struct pge_password *p)
{
    ev_io_stop(p->loop, &p->io);
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}

/* Both the exit status and EOF are in: judge. */
static void maybe_done(struct pge_password *p)
{
    char msg[128];
    if (p->pid > 0 || p->fd >= 0)
        return;
    if (!WIFEXITED(p->status) || WEXITSTATUS(p->status) != 0) {
        int sig = WIFSIGNALED(p->status);
        pge_errbuf_set(msg, sizeof msg, "password command %s %d",
                       sig ? "was killed by signal" : "exited with status",
                       sig ? WTERMSIG(p->status) : WEXITSTATUS(p->status));
        p->cb(p->arg, NULL, msg);
        return;
    }
    if (p->too_long) {
        pge_errbuf_set(msg, sizeof msg, "password command printed more than %d bytes",
                       PGE_PASSWORD_MAX);
        p->cb(p->arg, NULL, msg);
        return;
    }
    chomp(p->buf, &p->len);
    if (p->len == 0) {
        p->cb(p->arg, NULL, "password command printed nothing on its standard output");
        return;
    }
    p->cb(p->arg, p->buf, NULL);
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pge_password *p = w->data;
    (void)loop;
    (void)revents;
    for (;;) {
        char sink[512];
        size_t room = sizeof p->buf - 1 - p->len;
        /* Past the limit, keep draining so that the command is not stuck writing. */
        char *to = room > 0 ? p->buf + p->len : sink;
        ssize_t n = read(p->fd, to, room > 0 ? room : sizeof sink);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            close_pipe(p);
            maybe_done(p);
            return;
        }
        if (room > 0)
            p->len += (size_t)n;
        if (p->len > PGE_PASSWORD_MAX || room == 0)
            p->too_long = 1;
    }
}

static void on_exit_status(struct ev_loop *loop, ev_child *w, int revents)
{
    struct pge_password *p = w->data;
    (void)revents;
    if (!WIFEXITED(w->rstatus) && !WIFSIGNALED(w->rstatus))
        return; /* stopped or continued */
    ev_child_stop(loop, w);
    p->status = w->rstatus;
    p->pid = 0;
    maybe_done(p);
}

struct pge_password *pge_password_run(struct ev_loop *loop, const char *command, pge_password_cb cb,
                                      void *arg, char *err, size_t errsize)
{
    int fds[2] = {-1, -1};
    int null = -1;
    struct pge_password *p = calloc(1, sizeof *p);
    if (!p) {
        pge_errbuf_set(err, errsize, "out of memory starting the password command");
        return NULL;
    }
    p->loop = loop;
    p->cb = cb;
    p->arg = arg;
    p->fd = -1;
    null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || pipe2(fds, O_CLOEXEC) < 0 ||
        fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK) < 0)
        goto fail;
    char *argv[] = {"/bin/sh", "-c", (char *)command, NULL};
    p->pid = pge_supervisor_spawn_stdio("/bin/sh", argv, environ, NULL, null, fds[1]);
    if (p->pid < 0)
        goto fail;
    close(null);
    close(fds[1]);
    p->fd = fds[0];
    ev_io_init(&p->io, on_read, p->fd, EV_READ);
    p->io.data = p;
    ev_io_start(loop, &p->io);
    ev_child_init(&p->child, on_exit_status, p->pid, 0);
    p->child.data = p;
    ev_child_start(loop, &p->child);
    return p;
fail:
    pge_errbuf_set(err, errsize, "could not start the password command: %s", strerror(errno));
    if (null >= 0)
        close(null);
    if (fds[0] >= 0) {
        close(fds[0]);
        close(fds[1]);
    }
    free(p);
    return NULL;
}

void pge_password_free(struct pge_password *p)
{
    if (!p)
        return;
    if (p->pid > 0) {
        ev_child_stop(p->loop, &p->child);
        kill(-p->pid, SIGKILL);
    }
    close_pipe(p);
    explicit_bzero(p->buf, sizeof p->buf);
    free(p);
}
