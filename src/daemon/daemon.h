/* The daemon's entry point, called by main.c (and by tests that run it in-process). */
#ifndef SQD_DAEMON_H
#define SQD_DAEMON_H

/* Parse the command line, run until SIGTERM/SIGINT, return the exit status. */
int sqd_main(int argc, char **argv);

#endif
