/* A plain Win32 pipe client in the manner of the spec's process B: CreateFile on
 * \\.\pipe\NAME, message read mode, WriteFile each argument as one message and
 * ReadFile the reply. Prints "reply: <text>" per message, "done" at the end.
 * Usage: pipe_client NAME MSG... ; exit 0 on success, 1 on failure. */
#include <windows.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    char path[MAX_PATH];
    char buf[4096];
    DWORD n, mode = PIPE_READMODE_MESSAGE;
    HANDLE h;
    int i;
    if (argc < 2) return 1;
    snprintf(path, sizeof path, "\\\\.\\pipe\\%s", argv[1]);
    for (;;) {
        h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
        if (h != INVALID_HANDLE_VALUE) break;
        if (GetLastError() != ERROR_PIPE_BUSY || !WaitNamedPipeA(path, 20000)) {
            printf("open failed: %lu\n", GetLastError());
            return 1;
        }
    }
    if (!SetNamedPipeHandleState(h, &mode, NULL, NULL)) {
        printf("mode failed: %lu\n", GetLastError());
        return 1;
    }
    for (i = 2; i < argc; i++) {
        if (!WriteFile(h, argv[i], (DWORD)strlen(argv[i]), &n, NULL)) {
            printf("write failed: %lu\n", GetLastError());
            return 1;
        }
        if (!ReadFile(h, buf, sizeof buf - 1, &n, NULL)) {
            printf("read failed: %lu\n", GetLastError());
            return 1;
        }
        buf[n] = 0;
        printf("reply: %s\n", buf);
        fflush(stdout);
    }
    CloseHandle(h);
    printf("done\n");
    return 0;
}
