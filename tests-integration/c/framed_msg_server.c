/* A plain Win32 server that reads size-prefixed messages the way the spec's
 * pipewithsize reader does -- ReadFile of the 4-byte size, then ReadFile of
 * the payload -- on a pipe it created in *message* type and read mode. Each
 * ReadFile reads one message, so it only works if the writer sent the size
 * and the payload as two writes. Replies the way the spec's writer writes:
 * one WriteFile holding the size and "ack:<text>" (skipped once the client
 * has closed its end).
 * Prints "ready", then per message "size:N" and "got: <text>"; "client left"
 * when a client goes; exits after CLIENTS clients (default 1).
 * Usage: framed_msg_server NAME [CLIENTS] */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    char path[MAX_PATH];
    char buf[MAX_PATH + 1];
    char reply[MAX_PATH + 16];
    DWORD n, w, size, len;
    HANDLE h;
    int clients, c;
    if (argc < 2) return 1;
    clients = argc > 2 ? atoi(argv[2]) : 1;
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
    for (c = 0; c < clients; c++) {
        if (!ConnectNamedPipe(h, NULL) && GetLastError() != ERROR_PIPE_CONNECTED) {
            printf("connect failed: %lu\n", GetLastError());
            return 1;
        }
        for (;;) {
            size = 0;
            if (!ReadFile(h, &size, sizeof(DWORD), &n, NULL)) { /* read size first */
                DWORD e = GetLastError();
                if (e == ERROR_BROKEN_PIPE) break;
                printf("reading the size failed: %lu\n", e);
                return 1;
            }
            if (n != sizeof(DWORD) || size > MAX_PATH) {
                printf("bad size message: %lu bytes, size %lu\n", n, size);
                return 1;
            }
            printf("size:%lu\n", size);
            n = 0;
            if (size > 0 && !ReadFile(h, buf, size, &n, NULL)) { /* then the bytes */
                printf("reading the payload failed: %lu\n", GetLastError());
                return 1;
            }
            buf[n] = 0;
            printf("got: %s\n", buf);
            fflush(stdout);
            len = (DWORD)snprintf(reply + sizeof(DWORD), sizeof reply - sizeof(DWORD), "ack:%s", buf);
            memcpy(reply, &len, sizeof(DWORD));
            if (!WriteFile(h, reply, len + sizeof(DWORD), &w, NULL)) {
                DWORD e = GetLastError();
                /* A client that only sends may be gone already; what it
                 * sent is still read. */
                if (e == ERROR_NO_DATA || e == ERROR_BROKEN_PIPE) continue;
                printf("write failed: %lu\n", e);
                return 1;
            }
        }
        printf("client left\n");
        fflush(stdout);
        DisconnectNamedPipe(h);
    }
    CloseHandle(h);
    return 0;
}
