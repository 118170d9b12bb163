/* A plain Win32 pipe server in the manner of the spec's process A:
 * CreateNamedPipe (duplex, message type and read mode, PIPE_WAIT, unlimited
 * instances, MAX_PATH buffers, default timeout, default security), one client.
 * Prints "ready", then "got: <text>" for each message and replies "ack:<text>",
 * until the client leaves; then prints "client left".
 * Usage: pipe_server NAME */
#include <windows.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    char path[MAX_PATH];
    char buf[MAX_PATH + 1];
    char reply[MAX_PATH + 8];
    DWORD n, w;
    HANDLE h;
    if (argc < 2) return 1;
    snprintf(path, sizeof path, "\\\\.\\pipe\\%s", argv[1]);
    h = CreateNamedPipeA(path, PIPE_ACCESS_DUPLEX,
                         PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT,
                         PIPE_UNLIMITED_INSTANCES, MAX_PATH, MAX_PATH, 0, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        printf("create failed: %lu\n", GetLastError());
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    if (!ConnectNamedPipe(h, NULL) && GetLastError() != ERROR_PIPE_CONNECTED) {
        printf("connect failed: %lu\n", GetLastError());
        return 1;
    }
    for (;;) {
        if (!ReadFile(h, buf, MAX_PATH, &n, NULL)) {
            DWORD e = GetLastError();
            if (e == ERROR_BROKEN_PIPE) break;
            printf("read failed: %lu\n", e);
            return 1;
        }
        buf[n] = 0;
        printf("got: %s\n", buf);
        fflush(stdout);
        n = (DWORD)snprintf(reply, sizeof reply, "ack:%s", buf);
        if (!WriteFile(h, reply, n, &w, NULL)) {
            printf("write failed: %lu\n", GetLastError());
            return 1;
        }
    }
    printf("client left\n");
    CloseHandle(h);
    return 0;
}
