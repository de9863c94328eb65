/* squantd: SQuant weight quantization over HTTP. All of it is in libsquantd. */
#include "daemon.h"

int main(int argc, char **argv)
{
    return sqd_main(argc, argv);
}
