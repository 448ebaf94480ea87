// The cost of handing work to another vCPU, without any proxy: a 1-byte ping-pong over one loopback TCP connection
// (TCP_NODELAY), one ping per millisecond (so each side goes idle between pings, as at a fixed 1,000 rps), with the
// client pinned to CPU C and the echoing side to CPU S (-1: not pinned). Prints the round-trip percentiles in µs.
// docs/performance.md ("Proxy") quotes it to explain the pinned and shared placements of the fixed-rate case.
//
//   gcc -O2 -o /tmp/pingpong bench/proxy/wakeup/pingpong.c
//   /tmp/pingpong 0 0 3000; /tmp/pingpong 0 1 3000; /tmp/pingpong -1 -1 3000     # CLIENT_CPU SERVER_CPU PINGS
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
static void pin(int c){if(c<0)return;cpu_set_t s;CPU_ZERO(&s);CPU_SET(c,&s);sched_setaffinity(0,sizeof s,&s);}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  if(argc<4||atoi(argv[3])<1){fprintf(stderr,"usage: pingpong CLIENT_CPU SERVER_CPU PINGS (CPU -1: not pinned)\n");return 2;}
  int ccpu=atoi(argv[1]), scpu=atoi(argv[2]), n=atoi(argv[3]);
  int l=socket(AF_INET,SOCK_STREAM,0); struct sockaddr_in a={0}; a.sin_family=AF_INET; a.sin_addr.s_addr=htonl(0x7f000001);
  socklen_t al=sizeof a;
  if(l<0||bind(l,(void*)&a,sizeof a)||listen(l,1)||getsockname(l,(void*)&a,&al)){perror("pingpong: listen on 127.0.0.1");return 1;}
  if(fork()==0){pin(scpu);int s=accept(l,0,0);int one=1;setsockopt(s,IPPROTO_TCP,TCP_NODELAY,&one,4);char b;while(read(s,&b,1)==1)write(s,&b,1);_exit(0);}
  pin(ccpu); int c=socket(AF_INET,SOCK_STREAM,0); if(connect(c,(void*)&a,sizeof a)){perror("pingpong: connect");return 1;} int one=1;setsockopt(c,IPPROTO_TCP,TCP_NODELAY,&one,4);
  double *r=malloc(n*sizeof(double)); char b='x'; struct timespec next; clock_gettime(CLOCK_MONOTONIC,&next);
  for(int i=0;i<n;i++){next.tv_nsec+=1000000; if(next.tv_nsec>=1000000000){next.tv_nsec-=1000000000;next.tv_sec++;}
    clock_nanosleep(CLOCK_MONOTONIC,TIMER_ABSTIME,&next,0); double t=now();
    if(write(c,&b,1)!=1||read(c,&b,1)!=1){perror("pingpong: loopback round trip");return 1;} r[i]=now()-t;}
  close(c); wait(0); qsort(r,n,sizeof(double),cmp);
  printf("client cpu %d server cpu %d: p50 %.0f p90 %.0f p99 %.0f p99.9 %.0f us\n",ccpu,scpu,r[n/2],r[n*9/10],r[n*99/100],r[n*999/1000]);
}
