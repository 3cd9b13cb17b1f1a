// One tool's executable: its code (salient_tool_NAME) is compiled with every other tool's
// into the salient_tools library, so the library code they share is compiled once.
int SALIENT_TOOL_ENTRY(int argc, char** argv);

int main(int argc, char** argv) { return SALIENT_TOOL_ENTRY(argc, argv); }
