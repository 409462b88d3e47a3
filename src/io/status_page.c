#include "io/http.h"
const char ks_status_page_html[] = "<!doctype html><title>kscore</title>";
